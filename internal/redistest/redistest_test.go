package redistest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/cgn-bot/coord/internal/coordtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestStartPing(t *testing.T) {
	s := Start(t)
	c := s.Client(t)
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Errorf("Addr = %q", s.Addr())
	}
	if want := "redis://" + s.Addr(); s.URL() != want {
		t.Errorf("URL = %q, want %q", s.URL(), want)
	}
	if got := s.Do(t, "CONFIG", "GET", "save"); !equalStrings(got, "save", "") {
		t.Errorf("CONFIG GET save = %v", got)
	}
	if got := s.Do(t, "CONFIG", "GET", "appendonly"); !equalStrings(got, "appendonly", "no") {
		t.Errorf("CONFIG GET appendonly = %v", got)
	}
	if got := s.Do(t, "GET", "missing"); got != nil {
		t.Errorf("GET missing = %v, want nil", got)
	}
}

func equalStrings(v any, want ...string) bool {
	a, ok := v.([]any)
	if !ok || len(a) != len(want) {
		return false
	}
	for i := range a {
		if a[i] != want[i] {
			return false
		}
	}
	return true
}

func TestKillRestart(t *testing.T) {
	s := Start(t)
	c := s.Client(t)
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pid := s.Pid()
	s.Kill(t)
	if s.Running() {
		t.Fatal("Running after Kill")
	}
	probe := goredis.NewClient(&goredis.Options{Addr: s.Addr(), MaxRetries: -1, DialerRetries: 1})
	defer probe.Close()
	if err := probe.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded on a killed server")
	}
	s.Restart(t)
	if s.Pid() == pid || s.Pid() == 0 {
		t.Fatalf("pid after restart = %d (was %d)", s.Pid(), pid)
	}
	// The client reconnects to the same address; the data set is empty.
	coordtest.Eventually(t, 2*time.Second, func() bool { return c.Ping(ctx).Err() == nil }, "PING after restart")
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, goredis.Nil) {
		t.Fatalf("GET k after restart: %v, want redis.Nil", err)
	}
	s.Stop(t)
	if s.Running() {
		t.Fatal("Running after Stop")
	}
	s.Restart(t)
	s.Restart(t) // kill + start while running
	if err := c.Ping(ctx).Err(); err != nil {
		// The pooled connection died with the old process; one retry
		// (go-redis's default) reconnects.
		t.Fatalf("PING after restart of a running server: %v", err)
	}
}

func TestPauseResume(t *testing.T) {
	s := Start(t)
	c := s.Client(t)
	ctx := t.Context()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	s.Pause(t)
	done := make(chan error, 1)
	go func() { done <- c.Set(ctx, "k", "v", 0).Err() }()
	// A paused server does not answer: the command must still be pending
	// well after a running server would have answered.
	select {
	case err := <-done:
		s.Resume(t)
		t.Fatalf("SET completed while paused: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	s.Resume(t)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("SET after resume: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("SET did not complete within 2s of resume")
	}
}

func TestStopPaused(t *testing.T) {
	s := Start(t)
	s.Pause(t)
	s.Stop(t) // SIGTERM plus SIGCONT: a paused server still stops
	if s.Running() {
		t.Fatal("Running after Stop")
	}
}

func TestKillPubSubClients(t *testing.T) {
	s := Start(t)
	c := s.Client(t)
	ctx := t.Context()
	sub := c.Subscribe(ctx, "ch")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription confirmation
		t.Fatal(err)
	}
	if n := s.KillPubSubClients(t); n != 1 {
		t.Fatalf("KillPubSubClients = %d, want 1", n)
	}
	if n := s.KillPubSubClients(t); n != 0 {
		t.Fatalf("second KillPubSubClients = %d, want 0", n)
	}
}

func TestKillPubSubClientsNamed(t *testing.T) {
	s := Start(t)
	ctx := t.Context()
	for _, name := range []string{"cut-me", "keep-me"} {
		opts := s.Options()
		opts.ClientName = name
		c := goredis.NewClient(opts)
		t.Cleanup(func() { _ = c.Close() })
		sub := c.Subscribe(ctx, "ch")
		t.Cleanup(func() { _ = sub.Close() })
		if _, err := sub.Receive(ctx); err != nil { // the subscription confirmation
			t.Fatal(err)
		}
	}
	if n := s.KillPubSubClientsNamed(t, "cut-me"); n != 1 {
		t.Fatalf("KillPubSubClientsNamed(cut-me) = %d, want 1", n)
	}
	if n := s.KillPubSubClientsNamed(t, "cut-me"); n != 0 {
		t.Fatalf("second KillPubSubClientsNamed(cut-me) = %d, want 0", n)
	}
	if n := s.KillPubSubClients(t); n != 1 {
		t.Fatalf("KillPubSubClients after the named one was cut = %d, want 1 (keep-me)", n)
	}
}

func TestPassword(t *testing.T) {
	s := Start(t, WithPassword("s3cret"))
	if err := s.Client(t).Ping(t.Context()).Err(); err != nil {
		t.Fatalf("PING with password: %v", err)
	}
	if want := "redis://:s3cret@" + s.Addr(); s.URL() != want {
		t.Errorf("URL = %q, want %q", s.URL(), want)
	}
	bad := goredis.NewClient(&goredis.Options{Addr: s.Addr(), Password: "wrong"})
	defer bad.Close()
	if err := bad.Ping(t.Context()).Err(); err == nil {
		t.Fatal("PING with a wrong password succeeded")
	}
	none := goredis.NewClient(&goredis.Options{Addr: s.Addr()})
	defer none.Close()
	if err := none.Ping(t.Context()).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("PING without a password: %v, want NOAUTH", err)
	}
}

func TestACLUser(t *testing.T) {
	s := Start(t, WithACLUser("app", "p4ss"))
	ctx := t.Context()
	if err := s.Client(t).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET as ACL user: %v", err)
	}
	if want := "redis://app:p4ss@" + s.Addr(); s.URL() != want {
		t.Errorf("URL = %q, want %q", s.URL(), want)
	}
	opts, err := goredis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	fromURL := goredis.NewClient(opts)
	defer fromURL.Close()
	if err := fromURL.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING through URL: %v", err)
	}
	for _, tc := range []struct{ name, user, pass string }{
		{"wrong password", "app", "wrong"},
		{"default user", "", ""},
		{"unknown user", "nobody", "p4ss"},
	} {
		c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), Username: tc.user, Password: tc.pass, MaxRetries: -1})
		err := c.Ping(ctx).Err()
		c.Close()
		if err == nil {
			t.Errorf("%s: PING succeeded", tc.name)
		} else if !isAuthError(err) {
			t.Errorf("%s: PING error %v, want an authentication error", tc.name, err)
		}
	}
}

func TestTLS(t *testing.T) {
	s := Start(t, WithTLS(), WithPassword("pw"))
	ctx := t.Context()
	if err := s.Client(t).Ping(ctx).Err(); err != nil {
		t.Fatalf("PING over TLS: %v", err)
	}
	if want := "rediss://:pw@" + s.Addr(); s.URL() != want {
		t.Errorf("URL = %q, want %q", s.URL(), want)
	}
	opts, err := goredis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	opts.TLSConfig.RootCAs = s.CAPool()
	fromURL := goredis.NewClient(opts)
	defer fromURL.Close()
	if err := fromURL.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING through rediss:// URL: %v", err)
	}
	// Without the CA the certificate is not trusted; plain text is refused.
	untrusted, _ := goredis.ParseURL(s.URL())
	untrusted.MaxRetries = -1
	untrusted.DialerRetries = 1
	c := goredis.NewClient(untrusted)
	defer c.Close()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Error("PING with an untrusted certificate succeeded")
	}
	plain := goredis.NewClient(&goredis.Options{Addr: s.Addr(), Password: "pw", MaxRetries: -1, DialerRetries: 1, ReadTimeout: time.Second})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Error("plain-text PING to the TLS port succeeded")
	}
}

func TestWithArgs(t *testing.T) {
	s := Start(t, WithArgs("--maxmemory", "7mb"))
	if got := s.Do(t, "CONFIG", "GET", "maxmemory"); !equalStrings(got, "maxmemory", "7340032") {
		t.Errorf("CONFIG GET maxmemory = %v", got)
	}
}

func TestDoContextError(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := s.DoContext(ctx, "NOSUCHCOMMAND"); err == nil {
		t.Fatal("unknown command succeeded")
	}
}

func TestParseVersion(t *testing.T) {
	major, minor, ok := parseVersion("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64")
	if !ok || major != 7 || minor != 0 {
		t.Fatalf("parseVersion = %d, %d, %v", major, minor, ok)
	}
	if _, _, ok := parseVersion("garbage"); ok {
		t.Fatal("parseVersion(garbage) ok")
	}
}
