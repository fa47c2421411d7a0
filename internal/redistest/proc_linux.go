//go:build linux

package redistest

import "syscall"

// setParentDeathSignal asks the kernel to SIGKILL the child when the test
// binary dies without running its cleanups (a panic, a timeout, os.Exit).
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGKILL
}
