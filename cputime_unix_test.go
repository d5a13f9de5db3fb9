//go:build unix

package ddbtrack_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time this process has used, user and system.
// Benchmarks report it per operation beside the wall time because the
// machine they run on is shared: waiting for a core inflates wall time but
// not CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
