//go:build linux

package redistest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cgn-bot/coord/internal/coordtest"
)

// groupSignals records every signal a proc sends to its process group,
// and whether the group's leader had been reaped by then: after the reap,
// the group ID is a free pid that a new process may have taken.
type groupSignals struct {
	mu         sync.Mutex
	sent       []string
	afterReaps []string
}

// send records the call and signals the group.
func (g *groupSignals) send(pgid int, sig syscall.Signal) error {
	g.mu.Lock()
	g.sent = append(g.sent, sig.String())
	if !pidTaken(pgid) {
		g.afterReaps = append(g.afterReaps, sig.String())
	}
	g.mu.Unlock()
	return signalGroup(pgid, sig)
}

// check fails t if a signal went to the group after its leader was reaped.
func (g *groupSignals) check(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	t.Logf("signals sent to the group: %v", g.sent)
	if len(g.afterReaps) > 0 {
		t.Errorf("signalled the group after its leader was reaped (its ID free for reuse): %v", g.afterReaps)
	}
}

// pidTaken reports whether pid names a process, running or a zombie not
// yet reaped.
func pidTaken(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// startSleeper starts a process that sleeps for a minute and the recorder
// of its group's signals.
func startSleeper(t *testing.T) (*proc, *groupSignals) {
	t.Helper()
	bin, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	g := &groupSignals{}
	dir := t.TempDir()
	p, err := startProcSending(bin, []string{"60"}, dir, filepath.Join(dir, "log"), g.send)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.kill() })
	return p, g
}

// TestProcKillSignalsOnlyBeforeReap: kill, terminate and signal send
// nothing to the group once its leader is reaped.
func TestProcKillSignalsOnlyBeforeReap(t *testing.T) {
	t.Run("kill", func(t *testing.T) {
		p, g := startSleeper(t)
		if err := p.kill(); err != nil {
			t.Fatal(err)
		}
		g.check(t)
	})
	t.Run("terminate", func(t *testing.T) {
		p, g := startSleeper(t)
		graceful, err := p.terminate(10 * time.Second)
		if err != nil || !graceful {
			t.Fatalf("terminate: graceful %v, %v", graceful, err)
		}
		g.check(t)
	})
	t.Run("signal after exit", func(t *testing.T) {
		p, g := startSleeper(t)
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		if !p.wait(10 * time.Second) {
			t.Fatal("the killed process was not reaped within 10s")
		}
		for _, sig := range []syscall.Signal{sigStop, sigCont, sigKill} {
			if err := p.signal(sig); err != nil {
				t.Errorf("signal %v after the exit: %v", sig, err)
			}
		}
		if err := p.kill(); err != nil {
			t.Errorf("kill after the exit: %v", err)
		}
		g.check(t)
	})
}

// TestProcExitKillsItsGroup: what the leader forked dies when the leader
// exits, however it exits (here a SIGKILL to the leader alone), as kill's
// second signal used to see to.
func TestProcExitKillsItsGroup(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	g := &groupSignals{}
	p, err := startProcSending(sh, []string{"-c", fmt.Sprintf("sleep 60 & echo $! > %s.tmp && mv %s.tmp %s && exec sleep 61", pidFile, pidFile, pidFile)}, dir, filepath.Join(dir, "log"), g.send)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.kill() })
	var child int
	coordtest.Eventually(t, 10*time.Second, func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		child, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	}, "the child's pid written")
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if !p.wait(10 * time.Second) {
		t.Fatal("the killed leader was not reaped within 10s")
	}
	coordtest.Eventually(t, 10*time.Second, func() bool { return !running(child) },
		"the leader's child (pid %d) killed with it", child)
	g.check(t)
}

// running reports whether pid is a live process (not a zombie).
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
