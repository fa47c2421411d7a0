//go:build !unix

package redistest

import (
	"errors"
	"os/exec"
	"syscall"
)

func setProcAttr(*exec.Cmd) {}

func signalGroup(int, syscall.Signal) error { return osSupport() }

const (
	sigKill = syscall.Signal(9)
	sigTerm = syscall.Signal(15)
	sigStop = syscall.Signal(19)
	sigCont = syscall.Signal(18)
)

func osSupport() error { return errors.New("redistest: process control needs a Unix system") }

func awaitExit(int) bool { return false }
