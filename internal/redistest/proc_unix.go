//go:build unix

package redistest

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in its own process group, so signals sent to
// the group also reach anything it forks (a BGSAVE child, a replication
// fork).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setParentDeathSignal(cmd.SysProcAttr)
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}

const (
	sigKill = syscall.SIGKILL
	sigTerm = syscall.SIGTERM
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
)

// osSupport reports whether this system can run the harness.
func osSupport() error { return nil }
