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
	"syscall"
	"time"
)

// proc is one child process and the goroutine that reaps it. The goroutine
// ends when the process exits; every owner of a proc kills it and waits for
// done before its test ends, so no process and no goroutine outlives a test.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed after Wait returned
	err  error         // Wait's result; read only after done is closed
}

// startProc starts bin with args in dir, with stdout and stderr appended to
// logPath. The process leads its own process group.
func startProc(bin string, args []string, dir, logPath string) (*proc, error) {
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
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
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

// signal sends sig to the process group. A group that is already gone is
// not an error.
func (p *proc) signal(sig syscall.Signal) error {
	err := signalGroup(p.pid(), sig)
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
// reaped. SIGKILL also ends a stopped process.
func (p *proc) kill() error {
	if err := p.signal(sigKill); err != nil && !p.exited() {
		return err
	}
	if !p.wait(30 * time.Second) {
		return fmt.Errorf("redistest: pid %d did not exit 30s after SIGKILL", p.pid())
	}
	// Children of the group (a fork for a sync) die with it; signal again
	// in case one was created after the first signal.
	_ = p.signal(sigKill)
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
		_ = p.signal(sigKill)
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
