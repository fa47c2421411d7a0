package backend_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend"
	"github.com/cgn-bot/coord/backend/memory"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// open opens cfg with o and closes the result at cleanup.
func open(t *testing.T, o *backend.Opener, cfg backend.Config) *backend.Opened {
	t.Helper()
	b, err := o.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open(%q): %v", cfg.URL, err)
	}
	t.Cleanup(func() {
		if err := b.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// shareLocks reports whether a lease taken through a is seen through b.
func shareLocks(t *testing.T, a, b coord.Backend) bool {
	t.Helper()
	ctx := t.Context()
	res := "share-" + t.Name()
	l, err := a.Locker().Acquire(ctx, res, coord.WithRetry(0, 0))
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	defer func() { _ = l.Release(context.WithoutCancel(ctx)) }()
	held, err := b.Locker().Locked(ctx, res)
	if err != nil {
		t.Fatalf("Locked: %v", err)
	}
	return held
}

func TestMemorySharedByName(t *testing.T) {
	var o backend.Opener // the zero value is ready
	a := open(t, &o, backend.Config{URL: "mem://orders"})
	b := open(t, &o, backend.Config{URL: "mem://orders"})
	c := open(t, &o, backend.Config{URL: "mem://billing"})
	if a.Kind() != "memory" || a.FellBack() != "" {
		t.Fatalf("Kind %q, FellBack %q; want memory and none", a.Kind(), a.FellBack())
	}
	if a.InstanceID() == b.InstanceID() {
		t.Fatalf("two instances share the ID %q", a.InstanceID())
	}
	if !shareLocks(t, a, b) {
		t.Error("mem://orders opened twice on one Opener: the second does not see the first's lease")
	}
	if shareLocks(t, a, c) {
		t.Error("mem://orders and mem://billing share a lease")
	}
	var ha, hb *memory.Hub
	if !coord.As(a, &ha) || !coord.As(b, &hb) || ha != hb || ha != o.Hub("orders", nil) {
		t.Error("As(**memory.Hub) does not give the Opener's hub")
	}
}

func TestNilOpenerSharesNothing(t *testing.T) {
	a := open(t, nil, backend.Config{URL: "mem://x"})
	b := open(t, nil, backend.Config{URL: "mem://x"})
	if shareLocks(t, a, b) {
		t.Error("a nil Opener shared a hub between two opens")
	}
}

func TestEmptyURLIsMemory(t *testing.T) {
	var o backend.Opener
	a := open(t, &o, backend.Config{})
	b := open(t, &o, backend.Config{URL: "mem://"})
	c := open(t, &o, backend.Config{URL: "mem://" + backend.DefaultMemoryName + "?instance=worker-1"})
	if a.Kind() != "memory" {
		t.Fatalf("Kind %q, want memory", a.Kind())
	}
	if !shareLocks(t, a, b) || !shareLocks(t, a, c) {
		t.Error(`"", "mem://" and "mem://default" are not one hub`)
	}
	if c.InstanceID() != "worker-1" {
		t.Errorf("instance parameter: InstanceID %q, want worker-1", c.InstanceID())
	}
	if h := a.Health(t.Context()); h.Status != coord.Healthy || h.Backend != "memory" {
		t.Errorf("Health %+v, want healthy memory", h)
	}
}

func TestInvalidURLs(t *testing.T) {
	m := miniredis.RunT(t)
	var o backend.Opener
	for _, u := range []string{
		"ftp://host",
		"memory://x",
		"mem://x?size=3",
		"mem://x?instance=",
		"mem://x:80",
		"mem://x/y",
		"mem://user@x",
		"redis://" + m.Addr() + "?bogus=1",
		"redis://" + m.Addr() + "/notadb",
		"redis://" + m.Addr() + "?prefix=a{b}",
		"http://[::1",
		"://",
	} {
		b, err := o.Open(t.Context(), backend.Config{URL: u})
		if err == nil {
			_ = b.Close(context.Background())
			t.Errorf("Open(%q): no error", u)
			continue
		}
		if !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("Open(%q): %v, want an error wrapping coord.ErrInvalid", u, err)
		}
	}
}

func TestRedisOnMiniredis(t *testing.T) {
	m := miniredis.RunT(t)
	var o backend.Opener
	a := open(t, &o, backend.Config{URL: "redis://" + m.Addr() + "/0?prefix=app:&instance=a&dial_timeout=2s"})
	b := open(t, nil, backend.Config{URL: "redis://" + m.Addr() + "/0?prefix=app:"})
	other := open(t, nil, backend.Config{URL: "redis://" + m.Addr() + "/0?prefix=other:"})
	if a.Kind() != "redis" || a.InstanceID() != "a" {
		t.Fatalf("Kind %q, InstanceID %q; want redis and a", a.Kind(), a.InstanceID())
	}
	if !shareLocks(t, a, b) {
		t.Error("two Redis backends with one prefix do not share leases")
	}
	if shareLocks(t, a, other) {
		t.Error("two Redis backends with different prefixes share leases")
	}
	if len(m.Keys()) == 0 || !strings.HasPrefix(m.Keys()[0], "app:") && !strings.HasPrefix(m.Keys()[0], "other:") {
		t.Errorf("keys %q do not carry the prefixes", m.Keys())
	}
	if h := a.Health(t.Context()); h.Status == coord.Unhealthy || h.Backend != "redis" {
		t.Errorf("Health %+v, want a reachable redis", h)
	}
	var rb *coordredis.Backend
	if !coord.As(a, &rb) {
		t.Error("As(**coordredis.Backend) failed")
	}
	if a.State() != coord.Connected {
		t.Errorf("State %q, want connected", a.State())
	}
}

// deadAddr returns a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestUnreachableRedis(t *testing.T) {
	url := "redis://:hunter2secret@" + deadAddr(t) + "/0?dial_timeout=200ms"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	b, err := backend.Open(ctx, backend.Config{URL: url})
	if err == nil {
		_ = b.Close(context.Background())
		t.Fatal("Open on an unreachable Redis: no error")
	}
	if !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("error %v does not wrap coord.ErrUnavailable", err)
	}
	if strings.Contains(err.Error(), "hunter2secret") {
		t.Errorf("error carries the password: %v", err)
	}
}

func TestUnreachableRedisFallback(t *testing.T) {
	var logs coordtest.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))
	url := "redis://:hunter2secret@" + deadAddr(t) + "/0?dial_timeout=200ms"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	reg := prometheus.NewRegistry()
	b, err := backend.Open(ctx, backend.Config{URL: url, FallbackToMemory: true, Logger: logger, Registerer: reg})
	if err != nil {
		t.Fatalf("Open with FallbackToMemory: %v", err)
	}
	defer func() {
		if err := b.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	if b.Kind() != "memory" || b.FellBack() == "" {
		t.Errorf("Kind %q, FellBack %q; want memory with a reason", b.Kind(), b.FellBack())
	}
	h := b.Health(t.Context())
	if h.Status != coord.Degraded || !strings.Contains(h.Error, "unreachable") || h.Backend != "memory" {
		t.Errorf("Health %+v, want degraded memory with the reason", h)
	}
	if h.Connection != coord.Disconnected || b.State() != coord.Disconnected {
		t.Errorf("Connection %q, State %q: want the Redis reported disconnected", h.Connection, b.State())
	}
	var node *memory.Backend
	if !coord.As(b, &node) {
		t.Error("As(**memory.Backend) fails through the fallback")
	}
	// Unwrap, like As, leads through the fallback to the memory backend.
	var inner coord.Backend = b
	for {
		u, ok := inner.(interface{ Unwrap() coord.Backend })
		if !ok {
			break
		}
		inner = u.Unwrap()
	}
	if inner != coord.Backend(node) {
		t.Errorf("Unwrap ends at %T, want the memory backend", inner)
	}
	if v, ok := gauge(t, reg, "coord_redis_connection_state"); !ok || v != 0 {
		t.Errorf("coord_redis_connection_state = %v (found %v), want 0 (disconnected)", v, ok)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "falling back") {
		t.Errorf("the fallback was not logged at level ERROR; log:\n%s", logs.String())
	}
	for _, s := range []string{h.Error, logs.String(), b.FellBack()} {
		if strings.Contains(s, "hunter2secret") {
			t.Errorf("the password leaked: %s", s)
		}
	}
	// The fallback works as a single instance.
	if _, err := b.Locker().Acquire(t.Context(), "job", coord.WithRetry(0, 0)); err != nil {
		t.Errorf("Acquire on the fallback: %v", err)
	}
}

func TestFromEnv(t *testing.T) {
	m := miniredis.RunT(t)
	host, port, _ := net.SplitHostPort(m.Addr())
	cases := []struct {
		name    string
		env     map[string]string
		kind    string
		invalid bool
	}{
		{"nothing set", nil, "memory", false},
		{"REDIS_URL", map[string]string{"REDIS_URL": "redis://" + m.Addr() + "/0"}, "redis", false},
		{"REDIS_HOST and PORT", map[string]string{"REDIS_HOST": host, "REDIS_PORT": port, "REDIS_DB": "0"}, "redis", false},
		{"disabled", map[string]string{"REDIS_URL": "redis://" + m.Addr(), "ENABLE_DISTRIBUTED_CACHE": "false"}, "memory", false},
		{"enabled", map[string]string{"REDIS_HOST": host, "REDIS_PORT": port, "ENABLE_DISTRIBUTED_CACHE": "true"}, "redis", false},
		{"enabled without Redis", map[string]string{"ENABLE_DISTRIBUTED_CACHE": "true"}, "memory", false},
		{"bad flag", map[string]string{"ENABLE_DISTRIBUTED_CACHE": "maybe"}, "", true},
		{"bad port", map[string]string{"REDIS_HOST": host, "REDIS_PORT": "http"}, "", true},
		{"bad db", map[string]string{"REDIS_HOST": host, "REDIS_PORT": port, "REDIS_DB": "-1"}, "", true},
		{"bad URL scheme", map[string]string{"REDIS_URL": "mem://x"}, "", true},
		{"bad URL parameter", map[string]string{"REDIS_URL": "redis://" + m.Addr() + "?nope=1"}, "", true},
		{"URL with coord's parameters", map[string]string{"REDIS_URL": "redis://" + m.Addr() + "?prefix=env:&instance=i1"}, "redis", false},
		{"CA file for a URL without TLS", map[string]string{"REDIS_URL": "redis://" + m.Addr() + "?prefix=env:", "REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"}, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			getenv := func(k string) string { return c.env[k] }
			b, err := backend.FromEnv(t.Context(), backend.Config{Getenv: getenv})
			if c.invalid {
				if err == nil {
					_ = b.Close(context.Background())
					t.Fatal("no error")
				}
				if !errors.Is(err, coord.ErrInvalid) {
					t.Fatalf("%v does not wrap coord.ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = b.Close(context.Background()) }()
			if b.Kind() != c.kind {
				t.Errorf("Kind %q, want %q", b.Kind(), c.kind)
			}
		})
	}
	var logs coordtest.SyncBuffer
	b, err := backend.FromEnv(t.Context(), backend.Config{Getenv: func(string) string { return "" }, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close(context.Background())
	if !strings.Contains(logs.String(), "single-instance mode") || !strings.Contains(logs.String(), "REDIS_HOST") {
		t.Errorf("the choice of memory was not logged with its reason:\n%s", logs.String())
	}
	if _, err := backend.FromEnv(t.Context(), backend.Config{URL: "mem://x"}); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("FromEnv with a URL: %v, want ErrInvalid", err)
	}
}

func TestMiddlewareWiring(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs coordtest.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := open(t, nil, backend.Config{URL: "mem://m", Registerer: reg, Logger: logger})
	l, err := b.Locker().Acquire(t.Context(), "job")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "coord_distributed_lock_acquisitions_total" {
			found = true
		}
	}
	if !found {
		t.Error("the metrics middleware is not wired: no coord_distributed_lock_acquisitions_total")
	}
	if !strings.Contains(logs.String(), "coord acquire") && !strings.Contains(logs.String(), "acquire") {
		t.Errorf("the logging middleware is not wired; log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), l.Token()) {
		t.Error("the log carries a lock token in clear")
	}

	// A second backend on the same registry shares the series.
	c := open(t, nil, backend.Config{URL: "mem://m", Registerer: reg})
	if _, err := c.Locker().Locked(t.Context(), "job"); err != nil {
		t.Fatal(err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	m := miniredis.RunT(t)
	b, err := backend.Open(t.Context(), backend.Config{URL: "redis://" + m.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(t.Context()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.Locker().Acquire(t.Context(), "x"); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("Acquire after Close: %v, want ErrClosed", err)
	}
}

func TestRealRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.WithPassword("s3cret-pass"))
	b := open(t, nil, backend.Config{URL: srv.URL() + "/0"})
	if b.Kind() != "redis" {
		t.Fatalf("Kind %q, want redis", b.Kind())
	}
	if h := b.Health(t.Context()); h.Status != coord.Healthy {
		t.Errorf("Health %+v, want healthy", h)
	}

	// A wrong password ends the start-up at once, without the password.
	bad := strings.Replace(srv.URL(), "s3cret-pass", "wrong-pass", 1)
	if _, err := backend.Open(t.Context(), backend.Config{URL: bad}); err == nil || !errors.Is(err, coordredis.ErrAuth) || strings.Contains(err.Error(), "wrong-pass") {
		t.Errorf("Open with a wrong password: %v, want ErrAuth without the password", err)
	}

	// Stopped: an error, or a degraded fallback when asked for.
	srv.Stop(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := backend.Open(ctx, backend.Config{URL: srv.URL()}); !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("Open on a stopped server: %v, want ErrUnavailable", err)
	}
	fb, err := backend.Open(ctx, backend.Config{URL: srv.URL(), FallbackToMemory: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("Open with fallback on a stopped server: %v", err)
	}
	defer func() { _ = fb.Close(context.Background()) }()
	if h := fb.Health(t.Context()); h.Status != coord.Degraded {
		t.Errorf("fallback Health %+v, want degraded", h)
	}
}

func TestRealRedisTLS(t *testing.T) {
	srv := redistest.Start(t, redistest.WithTLS())
	b := open(t, nil, backend.Config{URL: srv.URL(), TLSConfig: srv.TLSConfig()})
	if h := b.Health(t.Context()); h.Status != coord.Healthy {
		t.Errorf("Health over TLS %+v, want healthy", h)
	}
}

// gauge returns the value of the unlabelled gauge name in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// A bad option is refused before any I/O: it is ErrInvalid even when the
// Redis is down, and never a reason to fall back.
func TestInvalidBeforeConnect(t *testing.T) {
	url := "redis://" + deadAddr(t) + "/0?prefix=a{b}"
	b, err := backend.Open(t.Context(), backend.Config{URL: url, FallbackToMemory: true, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		_ = b.Close(context.Background())
		t.Fatal("no error")
	}
	if !errors.Is(err, coord.ErrInvalid) || errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("Open: %v, want ErrInvalid only", err)
	}
}
