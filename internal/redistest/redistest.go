package redistest

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Timeouts used while waiting for processes. They are generous because the
// tests share a small, busy machine; they bound a broken start, not a slow one.
const (
	startTimeout = 15 * time.Second // until a new server answers PING
	stopTimeout  = 10 * time.Second // SIGTERM to exit before SIGKILL
	pollInterval = 10 * time.Millisecond
	adminTimeout = 5 * time.Second // per admin command
	portAttempts = 5               // launches on fresh ports before giving up
	logTailLines = 30              // lines of server log in an error
)

// Available reports why redis-server cannot be used here, or nil when it
// can. It looks for redis-server on PATH and checks that it is Redis 6.2 or
// newer (ACL users and TLS need 6; the harness uses 6.2 commands).
func Available() error {
	if err := osSupport(); err != nil {
		return err
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("redistest: redis-server not found on PATH (install it with `apt-get install redis-server`): %w", err)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return fmt.Errorf("redistest: %s --version: %w", bin, err)
	}
	major, minor, ok := parseVersion(string(out))
	if !ok {
		return fmt.Errorf("redistest: cannot read the version of %s from %q", bin, strings.TrimSpace(string(out)))
	}
	if major < 6 || major == 6 && minor < 2 {
		return fmt.Errorf("redistest: %s is version %d.%d; 6.2 or newer is needed", bin, major, minor)
	}
	return nil
}

// parseVersion reads "Redis server v=7.0.15 ...".
func parseVersion(s string) (major, minor int, ok bool) {
	m := regexp.MustCompile(`v=(\d+)\.(\d+)`).FindStringSubmatch(s)
	if m == nil {
		return 0, 0, false
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, true
}

// inCI reports whether the tests run in CI, where a missing or broken
// redis-server fails the test instead of skipping it.
func inCI() bool { return os.Getenv("CI") == "true" }

// unavailable skips the test with reason, or fails it under CI=true.
func unavailable(tb testing.TB, reason string) {
	tb.Helper()
	reason = strings.TrimPrefix(reason, "redistest: ")
	if inCI() {
		tb.Fatalf("redistest: cannot use redis-server, which CI=true requires: %s", reason)
	}
	tb.Skipf("redistest: skipping, cannot use redis-server here: %s (under CI=true this fails)", reason)
}

// Option configures a server started by [Start].
type Option func(*config)

type config struct {
	args     []string
	user     string
	password string
	tls      bool
}

// WithArgs appends extra redis-server command-line arguments, for example
// WithArgs("--maxmemory", "10mb"). They override the harness's config file.
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// WithPassword protects the server with requirepass, so clients must AUTH
// with password (and no user name).
func WithPassword(password string) Option {
	return func(c *config) { c.user, c.password = "", password }
}

// WithACLUser creates the ACL user "user on >pass ~* &* +@all" and turns the
// default user off, so clients must AUTH as user with pass.
func WithACLUser(user, pass string) Option {
	return func(c *config) { c.user, c.password = user, pass }
}

// WithTLS serves TLS only (tls-port; the plain port is disabled) with a
// certificate for 127.0.0.1 signed by a CA made for this server. Clients
// trust the CA through [Server.TLSConfig]; client certificates are not
// required.
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

// Server is one redis-server process on 127.0.0.1, owned by a test. Its
// methods are safe for concurrent use. Methods that take a testing.TB fail
// the test on error and must be called from the test's goroutine unless
// that TB is safe to use elsewhere (Errorf is; Fatal is not).
type Server struct {
	cfg      config
	bin      string
	dir      string
	port     int
	confPath string
	logPath  string
	tlsFiles *tlsFiles // nil without TLS

	lifeMu sync.Mutex // serializes Kill, Stop, Restart and the cleanup

	mu   sync.Mutex
	proc *proc // nil when never started; may have exited
}

// Start starts a fresh redis-server on a free loopback port, with a temp
// dir and no persistence (save "", appendonly no), and registers
// tb.Cleanup to stop it. When redis-server is missing or cannot start, it
// fails the test under CI=true and skips it otherwise, giving the reason.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if err := Available(); err != nil {
		unavailable(tb, err.Error())
	}
	s, err := newServer(tb, cfg, "redis", false, nil)
	if err != nil {
		unavailable(tb, err.Error())
	}
	return s
}

// newServer makes a server's dir, config and process and starts it on a
// free port, retrying with another port when the chosen one was taken.
// extraConf is added to the config file. The server is stopped at cleanup.
func newServer(tb testing.TB, cfg config, name string, bus bool, extraConf []string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(tb.TempDir(), name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		bin:      bin,
		dir:      dir,
		confPath: filepath.Join(dir, "redis.conf"),
		logPath:  filepath.Join(dir, "redis.log"),
	}
	if cfg.tls {
		if s.tlsFiles, err = makeTLSFiles(dir); err != nil {
			return nil, fmt.Errorf("redistest: making TLS certificates: %w", err)
		}
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("redistest: %s on %s, last lines of %s:\n%s", name, s.Addr(), s.logPath, logTail(s.logPath, logTailLines))
		}
		if err := s.shutdown(); err != nil {
			tb.Errorf("redistest: stopping %s: %v", name, err)
		}
	})
	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(bus); err != nil {
			return nil, err
		}
		if err := os.WriteFile(s.confPath, []byte(s.configFile(extraConf)), 0o600); err != nil {
			return nil, err
		}
		inUse, err := s.launch()
		if err == nil {
			return s, nil
		}
		if !inUse || attempt == portAttempts {
			return nil, err
		}
	}
}

// configFile renders the redis.conf for the server.
func (s *Server) configFile(extra []string) string {
	var b strings.Builder
	line := func(f string, a ...any) { fmt.Fprintf(&b, f+"\n", a...) }
	line("bind 127.0.0.1")
	if s.tlsFiles != nil {
		line("port 0")
		line("tls-port %d", s.port)
		line("tls-cert-file %q", s.tlsFiles.certFile)
		line("tls-key-file %q", s.tlsFiles.keyFile)
		line("tls-ca-cert-file %q", s.tlsFiles.caFile)
		line("tls-auth-clients no")
		line("tls-replication yes")
	} else {
		line("port %d", s.port)
	}
	line("dir %q", s.dir)
	line("daemonize no")
	line("logfile \"\"")
	line("save \"\"")
	line("appendonly no")
	line("repl-diskless-sync-delay 0") // a replica syncs at once, not after 5s
	switch {
	case s.cfg.user != "":
		line("user %s on %q ~* &* +@all", s.cfg.user, ">"+s.cfg.password)
		line("user default off")
		line("masteruser %s", s.cfg.user)
		line("masterauth %q", s.cfg.password)
	case s.cfg.password != "":
		line("requirepass %q", s.cfg.password)
		line("masterauth %q", s.cfg.password)
	}
	for _, l := range extra {
		line("%s", l)
	}
	return b.String()
}

// launch starts the process and waits until it answers PING. On failure the
// process is killed, the error carries the log tail, and inUse reports
// whether the port was taken.
func (s *Server) launch() (inUse bool, err error) {
	offset := int64(0)
	if fi, err := os.Stat(s.logPath); err == nil {
		offset = fi.Size()
	}
	args := append([]string{s.confPath}, s.cfg.args...)
	p, err := startProc(s.bin, args, s.dir, s.logPath)
	if err != nil {
		return false, fmt.Errorf("redistest: starting %s: %w", s.bin, err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	if err := s.waitReady(p); err != nil {
		_ = p.kill()
		log := logSince(s.logPath, offset)
		return addrInUse(log), fmt.Errorf("redistest: redis-server on %s: %w; log:\n%s", s.Addr(), err, tail(log, logTailLines))
	}
	return false, nil
}

// waitReady polls PING until it succeeds, the process exits or startTimeout
// passes.
func (s *Server) waitReady(p *proc) error {
	opts := s.adminOptions()
	opts.DialTimeout = 500 * time.Millisecond
	opts.ReadTimeout = time.Second
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for {
		if p.exited() {
			return fmt.Errorf("exited during start-up (%v)", p.err)
		}
		// Wait for the port to accept before asking go-redis, which logs
		// every failed dial.
		if conn, err := net.DialTimeout("tcp", s.Addr(), opts.DialTimeout); err != nil {
			lastErr = err
			if time.Now().After(deadline) {
				return fmt.Errorf("no answer to PING within %v (last error: %v)", startTimeout, lastErr)
			}
			time.Sleep(pollInterval)
			continue
		} else {
			_ = conn.Close()
		}
		// A new client each time: a go-redis pool that saw dial errors
		// waits a second between further dials.
		c := goredis.NewClient(opts)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		lastErr = c.Ping(ctx).Err()
		cancel()
		_ = c.Close()
		if lastErr == nil {
			return nil
		}
		if isAuthError(lastErr) {
			return fmt.Errorf("PING: %w", lastErr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v (last error: %v)", startTimeout, lastErr)
		}
		time.Sleep(pollInterval)
	}
}

// isAuthError reports whether err is an authentication failure, which
// waiting will not cure.
func isAuthError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "WRONGPASS") || strings.Contains(msg, "NOAUTH") || strings.Contains(msg, "NOPERM")
}

// logSince returns the part of the log written after offset.
func logSince(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if offset > int64(len(b)) {
		offset = 0
	}
	return string(b[offset:])
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// shutdown kills the process if it runs and waits for it; used at cleanup.
func (s *Server) shutdown() error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil || p.exited() {
		return nil
	}
	return p.kill()
}

// Addr returns "127.0.0.1:port". The port stays the same across restarts.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's TCP port.
func (s *Server) Port() int { return s.port }

// Dir returns the server's working directory (config file, log, nodes.conf).
func (s *Server) Dir() string { return s.dir }

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string { return logTail(s.logPath, n) }

// URL returns the server's URL: "redis://127.0.0.1:port", with rediss://
// under [WithTLS] and the user and password when configured. A rediss://
// client must still trust the test CA (see [Server.TLSConfig]).
func (s *Server) URL() string {
	u := url.URL{Scheme: "redis", Host: s.Addr()}
	if s.tlsFiles != nil {
		u.Scheme = "rediss"
	}
	if s.cfg.password != "" {
		u.User = url.UserPassword(s.cfg.user, s.cfg.password)
	}
	return u.String()
}

// Username returns the ACL user clients authenticate as ("" for none).
func (s *Server) Username() string { return s.cfg.user }

// Password returns the password clients authenticate with ("" for none).
func (s *Server) Password() string { return s.cfg.password }

// TLSConfig returns a new client TLS configuration that trusts the
// server's CA and verifies its certificate for 127.0.0.1, or nil when the
// server does not use TLS.
func (s *Server) TLSConfig() *tls.Config {
	if s.tlsFiles == nil {
		return nil
	}
	return s.tlsFiles.clientConfig()
}

// CAPool returns the pool holding the server's CA, or nil without TLS.
func (s *Server) CAPool() *x509.CertPool {
	if s.tlsFiles == nil {
		return nil
	}
	return s.tlsFiles.pool.Clone()
}

// CAFile returns the path of the server's CA certificate (PEM), or "" without TLS.
func (s *Server) CAFile() string {
	if s.tlsFiles == nil {
		return ""
	}
	return s.tlsFiles.caFile
}

// Options returns new go-redis options for a client of the server, with
// address, credentials and TLS filled in.
func (s *Server) Options() *goredis.Options {
	return &goredis.Options{
		Addr:      s.Addr(),
		Username:  s.cfg.user,
		Password:  s.cfg.password,
		TLSConfig: s.TLSConfig(),
	}
}

// adminOptions returns options for the harness's own short-lived
// connections: one connection, no retries, RESP2, no handshake extras.
func (s *Server) adminOptions() *goredis.Options {
	o := s.Options()
	o.Protocol = 2
	// One connection is used. The pool is larger because a go-redis pool
	// whose dial errors reach PoolSize starts a probing goroutine that
	// outlives Close by up to a second (and trips goleak).
	o.PoolSize = 4
	o.MaxRetries = -1
	o.DialTimeout = 2 * time.Second
	o.DialerRetries = 1 // one dial per command; callers poll
	o.ReadTimeout = adminTimeout
	o.WriteTimeout = adminTimeout
	o.DisableIdentity = true
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return o
}

// Client returns a new go-redis client of the server, closed at cleanup.
func (s *Server) Client(tb testing.TB) *goredis.Client {
	tb.Helper()
	c := goredis.NewClient(s.Options())
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// DoContext runs one command on a short-lived admin connection and
// returns its reply (nil for a nil reply).
func (s *Server) DoContext(ctx context.Context, args ...any) (any, error) {
	c := goredis.NewClient(s.adminOptions())
	defer c.Close()
	v, err := c.Do(ctx, args...).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	return v, err
}

// Do runs one command on a short-lived admin connection and returns its
// reply (nil for a nil reply); an error fails the test.
func (s *Server) Do(tb testing.TB, args ...any) any {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*adminTimeout)
	defer cancel()
	v, err := s.DoContext(ctx, args...)
	if err != nil {
		tb.Fatalf("redistest: %v on %s: %v", args, s.Addr(), err)
	}
	return v
}

// current returns the process, failing the test when it was never started.
func (s *Server) current() *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Running reports whether the server process is alive (possibly paused).
func (s *Server) Running() bool {
	p := s.current()
	return p != nil && !p.exited()
}

// Pid returns the process ID of the current server process, or 0.
func (s *Server) Pid() int {
	p := s.current()
	if p == nil || p.exited() {
		return 0
	}
	return p.pid()
}

// Kill sends SIGKILL and waits for the process to be reaped. The port stays
// reserved for [Server.Restart]; the data is lost.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	p := s.current()
	if p == nil {
		return
	}
	if err := p.kill(); err != nil {
		tb.Fatalf("redistest: kill %s: %v", s.Addr(), err)
	}
}

// Stop stops the server gracefully (SIGTERM, which makes redis-server shut
// down without saving here) and waits for it to exit; after stopTimeout it
// kills it and fails the test.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	p := s.current()
	if p == nil {
		return
	}
	graceful, err := p.terminate(stopTimeout)
	if err != nil {
		tb.Fatalf("redistest: stop %s: %v", s.Addr(), err)
	}
	if !graceful {
		tb.Fatalf("redistest: %s did not exit within %v of SIGTERM; killed", s.Addr(), stopTimeout)
	}
}

// Restart starts the server again on the same port after [Server.Kill] or
// [Server.Stop] (a running server is killed first) and waits until it
// answers PING. The data set starts empty.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.restart(); err != nil {
		tb.Fatal(err)
	}
}

// restart kills the process if it runs and starts a new one on the same
// port, retrying for a while if the port is briefly taken.
func (s *Server) restart() error {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if p := s.current(); p != nil {
		if err := p.kill(); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(startTimeout)
	for {
		inUse, err := s.launch()
		if err == nil {
			return nil
		}
		if !inUse || time.Now().After(deadline) {
			return fmt.Errorf("redistest: restart on the same port: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Pause stops the server with SIGSTOP: connections stay open, and commands
// hang until [Server.Resume].
func (s *Server) Pause(tb testing.TB) {
	tb.Helper()
	s.signal(tb, sigStop, "SIGSTOP")
}

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume(tb testing.TB) {
	tb.Helper()
	s.signal(tb, sigCont, "SIGCONT")
}

// signal sends sig to the server's process group, failing tb on error.
func (s *Server) signal(tb testing.TB, sig syscall.Signal, name string) {
	tb.Helper()
	p := s.current()
	if p == nil || p.exited() {
		tb.Fatalf("redistest: %s to %s: server is not running", name, s.Addr())
		return
	}
	if err := p.signal(sig); err != nil {
		tb.Fatalf("redistest: %s to %s: %v", name, s.Addr(), err)
	}
}

// FlushAll empties every database of the server (FLUSHALL).
func (s *Server) FlushAll(tb testing.TB) {
	tb.Helper()
	s.Do(tb, "FLUSHALL")
}

// KillPubSubClients runs CLIENT KILL TYPE pubsub and returns how many
// connections it closed.
func (s *Server) KillPubSubClients(tb testing.TB) int {
	tb.Helper()
	n, ok := s.Do(tb, "CLIENT", "KILL", "TYPE", "pubsub").(int64)
	if !ok {
		tb.Fatalf("redistest: CLIENT KILL TYPE pubsub on %s: unexpected reply", s.Addr())
	}
	return int(n)
}

// KillPubSubClientsNamed closes the pubsub connections whose client name
// is name (CLIENT LIST TYPE pubsub, then CLIENT KILL ID of each), leaving
// every other client alone, and returns how many it closed.
func (s *Server) KillPubSubClientsNamed(tb testing.TB, name string) int {
	tb.Helper()
	list, _ := s.Do(tb, "CLIENT", "LIST", "TYPE", "pubsub").(string)
	killed := 0
	sc := bufio.NewScanner(strings.NewReader(list))
	for sc.Scan() {
		var id, cname string
		for _, f := range strings.Fields(sc.Text()) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "id":
				id = v
			case "name":
				cname = v
			}
		}
		if cname == name && id != "" {
			s.Do(tb, "CLIENT", "KILL", "ID", id)
			killed++
		}
	}
	return killed
}
