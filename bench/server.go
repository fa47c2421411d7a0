package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// server is a redis-server process on a free loopback port, owned by the
// program: started without persistence and killed by stop.
type server struct {
	cmd    *exec.Cmd
	dir    string
	addr   string
	exited chan struct{}
	log    *os.File
}

// startServer starts bin on a free 127.0.0.1 port and waits until it
// answers PING.
func startServer(ctx context.Context, bin string) (*server, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (install it with `apt-get install redis-server`): %w", err)
	}
	dir, err := os.MkdirTemp("", "coordbench-redis-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 5 {
		s, err := launch(ctx, path, dir)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func launch(ctx context.Context, path, dir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, and SIGKILL when this program dies without
	// cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	s := &server{cmd: cmd, dir: dir, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), exited: make(chan struct{}), log: logf}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx); err != nil {
		s.kill()
		b, _ := os.ReadFile(logf.Name())
		return nil, fmt.Errorf("redis-server on %s: %w; log:\n%s", s.addr, err, strings.TrimSpace(string(b)))
	}
	return s, nil
}

func (s *server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-s.exited:
			return errors.New("exited during start-up")
		default:
		}
		if conn, err := net.DialTimeout("tcp", s.addr, 500*time.Millisecond); err == nil {
			_ = conn.Close()
			c := goredis.NewClient(&goredis.Options{Addr: s.addr})
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			err = c.Ping(pctx).Err()
			cancel()
			_ = c.Close()
			if err == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return errors.New("no answer to PING within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops the server (SIGTERM, then SIGKILL after 5s) and waits for it.
func (s *server) kill() {
	select {
	case <-s.exited:
	default:
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
	}
	_ = s.log.Close()
}

// stop kills the server and removes its directory.
func (s *server) stop() {
	s.kill()
	_ = os.RemoveAll(s.dir)
}

// clientOptions are the options of every client of the run: the same
// pool for every contender.
func (s *server) clientOptions() *goredis.Options {
	return &goredis.Options{
		Addr:         s.addr,
		PoolSize:     32,
		MinIdleConns: 0,
		// The machine may be loaded: a slow reply is measured, not failed.
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
	}
}

func (s *server) newClient() *goredis.Client { return goredis.NewClient(s.clientOptions()) }
