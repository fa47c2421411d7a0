package redis_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	redislogging "github.com/redis/go-redis/v9/logging"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

func TestClientLogsRoutedToSlog(t *testing.T) {
	rec := coordtest.NewLogRecorder(slog.LevelDebug)
	goredis.SetLogger(coordredis.SlogLogger(slog.New(rec)))
	t.Cleanup(redislogging.Enable) // go-redis's default logger again
	srv := redistest.Start(t)
	o := srv.Options()
	o.MaxRetries = -1
	c := goredis.NewClient(o)
	defer c.Close()
	b, err := coordredis.New(c, &coordredis.Options{HealthInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	ctx := t.Context()
	if _, err := b.Invalidator().Subscribe(ctx, func(coord.Invalidation) {}); err != nil {
		t.Fatal(err)
	}
	if h := b.Health(ctx); h.Status != coord.Healthy {
		t.Fatalf("Health = %+v", h)
	}
	srv.Kill(t)
	// A command while the server is down makes go-redis dial, fail and
	// log it.
	if h := b.Health(ctx); h.Status != coord.Unhealthy {
		t.Errorf("Health with the server down = %+v", h)
	}
	coordtest.Eventually(t, 5*time.Second, func() bool { return len(rec.Find("go-redis: ")) > 0 }, "a go-redis line as a slog record")
	srv.Restart(t)
	coordtest.Eventually(t, 10*time.Second, func() bool { return b.Health(ctx).Status == coord.Healthy }, "healthy again")
	for _, r := range rec.Find("go-redis: ") {
		if r.Level != slog.LevelWarn || r.Attrs["source"] != "go-redis" {
			t.Errorf("go-redis record %s: want level WARN and source=go-redis", r.Text())
		}
		if strings.HasPrefix(r.Msg, "go-redis: redis: ") || strings.HasSuffix(r.Msg, "\n") {
			t.Errorf("go-redis record %q keeps go-redis's prefix or newline", r.Msg)
		}
	}
	t.Logf("go-redis records: %d, first: %s", len(rec.Find("go-redis: ")), rec.Find("go-redis: ")[0].Text())
}

func TestConnectLogsEachRetry(t *testing.T) {
	ln := deadLoopback(t)
	rec := coordtest.NewLogRecorder(slog.LevelDebug)
	c := goredis.NewClient(&goredis.Options{Addr: ln, Password: "hunter2secret", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	err := coordredis.Connect(ctx, c, coordredis.ConnectLogger(slog.New(rec)))
	if !errors.Is(err, coord.ErrUnavailable) {
		t.Fatalf("Connect to %s = %v, want ErrUnavailable", ln, err)
	}
	retries := rec.Find("Redis did not answer; retrying")
	// A try dials 5 times 100ms apart (0.4s), then Connect waits 100ms,
	// 200ms: the first two retries are logged within about 1.1s, well
	// inside 3s.
	if len(retries) < 2 {
		t.Fatalf("%d retry records, want one per retry (at least 2); records: %v", len(retries), rec.All())
	}
	for i, r := range retries {
		if r.Level != slog.LevelWarn {
			t.Errorf("retry record %d at %v, want WARN", i, r.Level)
		}
		if r.Attrs["attempt"] != strconv.Itoa(i+1) || r.Attrs["attempts"] != strconv.Itoa(coordredis.ConnectAttempts) {
			t.Errorf("retry record %d: attempt %q of %q", i, r.Attrs["attempt"], r.Attrs["attempts"])
		}
		if r.Attrs["addr"] != ln || r.Attrs["error"] == "" || r.Attrs["retry_in"] == "" {
			t.Errorf("retry record %d lacks addr, error or retry_in: %s", i, r.Text())
		}
		if strings.Contains(r.Text(), "hunter2secret") {
			t.Errorf("retry record carries the password: %s", r.Text())
		}
	}
	if retries[0].Attrs["retry_in"] != "100ms" || retries[1].Attrs["retry_in"] != "200ms" {
		t.Errorf("retry_in %q, %q: want 100ms then 200ms", retries[0].Attrs["retry_in"], retries[1].Attrs["retry_in"])
	}
	// Without ConnectLogger, Connect logs nothing (and has nowhere to).
	if err := coordredis.Connect(ctx, c, nil); !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("Connect with a nil option = %v", err)
	}
}

// deadLoopback returns a loopback address nothing listens on.
func deadLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestBackendRecordLevels checks the level of the backend's own records
// for a lost auto-renewed lease (Error) and a subscriber outage (Warn,
// then Info once resubscribed), and that none carries the lease token.
func TestBackendRecordLevels(t *testing.T) {
	srv := redistest.Start(t)
	rec := coordtest.NewLogRecorder(slog.LevelDebug)
	o := srv.Options()
	o.MaxRetries = -1
	c := goredis.NewClient(o)
	defer c.Close()
	b, err := coordredis.New(c, &coordredis.Options{Logger: slog.New(rec), HealthInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	ctx := t.Context()
	lk, err := b.Locker().Acquire(ctx, "job", coord.WithTTL(2*time.Second), coord.WithAutoRenew())
	if err != nil {
		t.Fatal(err)
	}
	// The key disappears behind the backend's back (as after a failover
	// that lost it): the holder finds out at its next renewal.
	if n, err := c.Del(ctx, coordredis.DefaultPrefix+"lock:{job}").Result(); err != nil || n != 1 {
		t.Fatalf("DEL of the lease key: %d, %v", n, err)
	}
	if !coordtest.ClosedWithin(lk.Done(), 5*time.Second) {
		t.Fatal("the force-released lease's Done did not close")
	}
	// Renewals come every TTL/3: the next one finds the key gone.
	coordtest.Eventually(t, 2*time.Second, func() bool { return len(rec.Find("auto-renewed lease lost")) > 0 }, "a lease lost record")
	if r := rec.Find("auto-renewed lease lost")[0]; r.Level != slog.LevelError {
		t.Errorf("lease lost at %v; want ERROR", r.Level)
	}

	if _, err := b.Invalidator().Subscribe(ctx, func(coord.Invalidation) {}); err != nil {
		t.Fatal(err)
	}
	srv.Kill(t)
	_ = b.Health(ctx)
	coordtest.Eventually(t, 5*time.Second, func() bool { return len(rec.Find("coord/redis: subscriber connection")) > 0 }, "a subscriber record")
	srv.Restart(t)
	coordtest.Eventually(t, 10*time.Second, func() bool { return b.Health(ctx).Status == coord.Healthy }, "healthy again")
	coordtest.Eventually(t, 5*time.Second, func() bool { return len(rec.Find("subscriber resubscribed")) > 0 }, "a resubscribed record")
	want := map[string]slog.Level{
		"coord/redis: subscriber connection reconnecting":    slog.LevelWarn,
		"coord/redis: command connection lost; reconnecting": slog.LevelWarn,
		"coord/redis: command connection restored":           slog.LevelInfo,
		"subscriber resubscribed":                            slog.LevelInfo,
	}
	for msg, lvl := range want {
		rs := rec.Find(msg)
		if len(rs) == 0 {
			t.Errorf("no record %q", msg)
			continue
		}
		if rs[0].Level != lvl {
			t.Errorf("%q at %v; want %v", msg, rs[0].Level, lvl)
		}
	}
	for _, r := range rec.All() {
		if strings.Contains(r.Text(), lk.Token()) {
			t.Errorf("record carries the lease token: %s", r.Text())
		}
	}
}
