package redistest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process and the goroutine that reaps it. The goroutine
// ends when the process exits; every owner of a proc kills it and waits for
// done before its test ends, so no process and no goroutine outlives a test.
//
// The process group's ID is the leader's pid, and once the leader is reaped
// that pid is free for the kernel to give to a new process (another
// server, which leads a group of that ID too). So the group is signalled
// only while the leader is known not to be reaped: [proc.signal] and the
// reaper take mu, and the reaper marks the group gone before it reaps.
// Where the system lets the reaper see the exit first without reaping
// ([awaitExit], Linux), the leader is a zombie meanwhile, which keeps its
// pid (and the group ID) from being reused, and the reaper kills what is
// left of the group then.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed after Wait returned
	err  error         // Wait's result; read only after done is closed

	// sendGroup signals a process group (signalGroup; a test records the
	// calls).
	sendGroup func(pgid int, sig syscall.Signal) error

	mu   sync.Mutex // held while the group is signalled
	gone bool       // the leader is reaped or about to be: no more signals
}

// startProc starts bin with args in dir, with stdout and stderr appended to
// logPath. The process leads its own process group.
func startProc(bin string, args []string, dir, logPath string) (*proc, error) {
	return startProcSending(bin, args, dir, logPath, signalGroup)
}

// startProcSending is startProc with the function that signals the
// process group.
func startProcSending(bin string, args []string, dir, logPath string, sendGroup func(pgid int, sig syscall.Signal) error) (*proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	// The child gets its own copy of the descriptor, so ours can be closed
	// right after Start and no copying goroutine is needed.
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), sendGroup: sendGroup}
	go p.reap()
	return p, nil
}

// reap waits for the process to exit, ends the group's signals, reaps the
// process and closes done.
func (p *proc) reap() {
	if awaitExit(p.pid()) {
		// The leader is a zombie: its pid, and so the group ID, cannot
		// be reused yet. Whatever it forked (a BGSAVE child) dies with it.
		p.mu.Lock()
		_ = p.sendGroup(p.pid(), sigKill)
		p.gone = true
		p.mu.Unlock()
		p.err = p.cmd.Wait()
	} else {
		// The exit cannot be seen without reaping: mark the group gone
		// right after, which leaves a short window.
		p.err = p.cmd.Wait()
		p.mu.Lock()
		p.gone = true
		p.mu.Unlock()
	}
	close(p.done)
}

// pid returns the process ID.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited and been reaped.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process group while its leader is not reaped
// (see [proc]). A group that is already gone is not an error.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return nil
	}
	err := p.sendGroup(p.pid(), sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// wait waits up to timeout for the process to exit and reports whether it did.
func (p *proc) wait(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// kill sends SIGKILL to the process group and waits until the process is
// reaped. SIGKILL also ends a stopped process. A child of the group (a fork
// for a sync) created after the signal is killed by the reaper when the
// leader exits (see [proc.reap]); nothing is signalled after the reap.
func (p *proc) kill() error {
	if err := p.signal(sigKill); err != nil && !p.exited() {
		return err
	}
	if !p.wait(30 * time.Second) {
		return fmt.Errorf("redistest: pid %d did not exit 30s after SIGKILL", p.pid())
	}
	return nil
}

// terminate sends SIGTERM (and SIGCONT, so a paused process can act on it)
// and waits up to timeout; then it falls back to kill. It reports whether
// the process exited on SIGTERM.
func (p *proc) terminate(timeout time.Duration) (graceful bool, err error) {
	if p.exited() {
		return true, nil
	}
	if err := p.signal(sigTerm); err != nil {
		return false, err
	}
	_ = p.signal(sigCont)
	if p.wait(timeout) {
		return true, nil
	}
	return false, p.kill()
}

// Ports are picked below the kernel's ephemeral range, so that neither an
// outgoing connection's local port nor another listener on port 0 takes a
// killed server's port before [Server.Restart] reuses it. When that range is
// too small, the kernel picks (listening on port 0).
const (
	lowestPort  = 10000
	clusterBus  = 10000 // a cluster node's bus listens on port+clusterBus
	defaultLow  = 32768 // Linux's default start of ip_local_port_range
	minPortPool = 2000
)

// freePort returns a loopback TCP port that was free a moment ago. With
// bus set, port+10000 (the Redis Cluster bus port) was free too.
func freePort(bus bool) (int, error) {
	hi := ephemeralLow() - clusterBus // so that the bus port is below the range too
	for range 100 {
		port := 0
		if hi-lowestPort >= minPortPool {
			port = lowestPort + rand.IntN(hi-lowestPort)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			if port == 0 {
				return 0, err
			}
			continue
		}
		port = l.Addr().(*net.TCPAddr).Port
		if !bus {
			l.Close()
			return port, nil
		}
		if port+clusterBus > 65535 {
			l.Close()
			continue
		}
		lb, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+clusterBus))
		l.Close()
		if err != nil {
			continue
		}
		lb.Close()
		return port, nil
	}
	return 0, errors.New("redistest: no free loopback port found")
}

// ephemeralLow returns the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultLow
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return defaultLow
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return defaultLow
	}
	return n
}

// logTail returns the last n lines of the file at path, for error messages.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	b = bytes.TrimRight(b, "\n")
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// addrInUse reports whether a log says the server could not bind its port.
func addrInUse(log string) bool {
	return strings.Contains(log, "Address already in use")
}
