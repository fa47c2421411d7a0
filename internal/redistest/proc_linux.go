//go:build linux

package redistest

import (
	"syscall"
	"unsafe"
)

// setParentDeathSignal asks the kernel to SIGKILL the child when the test
// binary dies without running its cleanups (a panic, a timeout, os.Exit).
func setParentDeathSignal(attr *syscall.SysProcAttr) {
	attr.Pdeathsig = syscall.SIGKILL
}

// awaitExit blocks until the process pid (a child) has exited, without
// reaping it (waitid with WNOWAIT): it stays a zombie, its pid taken, until
// exec.Cmd.Wait reaps it. It returns false if the kernel refused.
func awaitExit(pid int) bool {
	const pPID = 1     // P_PID
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid), uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		switch errno {
		case 0:
			return true
		case syscall.EINTR:
			continue
		default:
			return false
		}
	}
}
