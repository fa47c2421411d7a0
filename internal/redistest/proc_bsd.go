//go:build unix && !linux

package redistest

import "syscall"

// setParentDeathSignal does nothing where the kernel has no parent-death
// signal; cleanups still stop every server.
func setParentDeathSignal(*syscall.SysProcAttr) {}
