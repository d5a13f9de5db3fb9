//go:build !unix

package ddblocal

import (
	"errors"
	"os"
	"os/exec"
)

// setProcAttr does nothing: without Unix process groups, Stop can only kill
// the server process itself.
func setProcAttr(*exec.Cmd) {}

// signalGroup kills the server process. There is no gentle stop to try
// first, so kill is ignored.
func signalGroup(cmd *exec.Cmd, kill bool) error {
	return cmd.Process.Kill()
}

func isProcessGone(err error) bool {
	return errors.Is(err, os.ErrProcessDone)
}
