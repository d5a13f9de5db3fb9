package ddblocal

import "syscall"

// setParentDeathSignal asks the kernel to kill the server when the process
// that started it dies. Without it, a test binary that panics, times out or
// is killed before its cleanup runs would leave the server running, holding a
// port and memory until someone notices.
//
// The signal is tied to the OS thread that started the child, not the whole
// process. The Go runtime only ends a thread when a goroutine exits while
// locked to it, which nothing here does, so in practice it fires when the
// process dies.
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGKILL
}
