//go:build unix && !linux

package ddblocal

import "syscall"

// setParentDeathSignal does nothing: only Linux can tie a child's life to its
// parent's. Elsewhere a server outlives a test binary that dies before its
// cleanup runs.
func setParentDeathSignal(*syscall.SysProcAttr) {}
