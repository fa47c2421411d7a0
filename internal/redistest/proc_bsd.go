//go:build unix && !linux

package redistest

import "syscall"

// setParentDeathSignal does nothing where the kernel has no parent-death
// signal; cleanups still stop every server.
func setParentDeathSignal(*syscall.SysProcAttr) {}

// awaitExit cannot see an exit without reaping here: it returns false
// at once, and the reaper marks the group gone right after the reap.
func awaitExit(int) bool { return false }
