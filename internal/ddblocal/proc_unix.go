//go:build unix

package ddblocal

import (
	"errors"
	"os/exec"
	"syscall"
)

// setProcAttr puts the server in a process group of its own, so Stop can
// signal it and everything it spawned at once, and so a Ctrl-C aimed at the
// terminal's foreground group reaches the test binary, which then stops the
// server in order, instead of racing it.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(cmd.SysProcAttr)
}

// signalGroup sends SIGTERM, or SIGKILL when kill is set, to the server's
// process group.
func signalGroup(cmd *exec.Cmd, kill bool) error {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	// With Setpgid the group id is the child's pid; a negative pid
	// addresses the group.
	return syscall.Kill(-cmd.Process.Pid, sig)
}

func isProcessGone(err error) bool {
	return errors.Is(err, syscall.ESRCH)
}
