package backend_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

func TestOpenLogsEachRetry(t *testing.T) {
	rec := coordtest.NewLogRecorder(slog.LevelDebug)
	// One PING without go-redis's own retries dials 5 times 100ms apart
	// (0.4s); Connect waits 100ms, then 200ms: the first two retries are
	// logged within about 1.1s, well inside 3s.
	url := "redis://:hunter2secret@" + deadAddr(t) + "/0?dial_timeout=100ms&max_retries=-1"
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	b, err := backend.Open(ctx, backend.Config{URL: url, Logger: slog.New(rec)})
	if err == nil {
		_ = b.Close(context.Background())
		t.Fatal("Open on an unreachable Redis: no error")
	}
	retries := rec.Find("Redis did not answer; retrying")
	if len(retries) < 2 {
		t.Fatalf("%d retry records within 3s, want one per retry (at least 2); records: %v", len(retries), rec.All())
	}
	for i, r := range retries {
		if r.Level != slog.LevelWarn || r.Attrs["attempt"] != fmt.Sprint(i+1) || r.Attrs["error"] == "" || r.Attrs["retry_in"] == "" {
			t.Errorf("retry record %d: %s", i, r.Text())
		}
	}
	for _, r := range rec.All() {
		if strings.Contains(r.Text(), "hunter2secret") {
			t.Errorf("a record carries the password: %s", r.Text())
		}
	}
}

func TestFromEnvDisabledWithRedisConfigured(t *testing.T) {
	for _, v := range []string{"REDIS_URL", "REDIS_HOST"} {
		t.Run(v, func(t *testing.T) {
			rec := coordtest.NewLogRecorder(slog.LevelDebug)
			env := map[string]string{"ENABLE_DISTRIBUTED_CACHE": "false", "REDIS_URL": "", "REDIS_HOST": ""}
			env[v] = map[string]string{"REDIS_URL": "redis://:pw@" + deadAddr(t), "REDIS_HOST": "127.0.0.1"}[v]
			b, err := backend.FromEnv(t.Context(), backend.Config{Getenv: func(k string) string { return env[k] }, Logger: slog.New(rec)})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = b.Close(context.Background()) }()
			if b.Kind() != "memory" {
				t.Errorf("Kind %q, want memory", b.Kind())
			}
			h := b.Health(t.Context())
			want := "ENABLE_DISTRIBUTED_CACHE is false while " + v + " is set"
			if h.Status != coord.Degraded || !strings.Contains(h.Error, want) {
				t.Errorf("Health %+v, want degraded saying %q", h, want)
			}
			if !strings.Contains(b.FellBack(), want) {
				t.Errorf("FellBack %q, want the reason", b.FellBack())
			}
			var warns []coordtest.LogRecord
			for _, r := range rec.All() {
				if r.Level >= slog.LevelWarn && !strings.HasPrefix(r.Msg, "coord health") {
					warns = append(warns, r)
				}
			}
			if len(warns) != 1 || !strings.Contains(warns[0].Attrs["reason"], want) {
				t.Errorf("want one WARN record with the reason, got %v", warns)
			}
		})
	}
	// Disabled with no Redis configured: single-instance mode is what was
	// asked for, healthy and logged at info.
	rec := coordtest.NewLogRecorder(slog.LevelDebug)
	b, err := backend.FromEnv(t.Context(), backend.Config{
		Getenv: func(k string) string { return map[string]string{"ENABLE_DISTRIBUTED_CACHE": "false"}[k] },
		Logger: slog.New(rec),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close(context.Background()) }()
	if h := b.Health(t.Context()); h.Status != coord.Healthy {
		t.Errorf("disabled without Redis: Health %+v, want healthy", h)
	}
	for _, r := range rec.All() {
		if r.Level >= slog.LevelWarn {
			t.Errorf("disabled without Redis logged %s", r.Text())
		}
	}
}

// TestConfigLoggerReachesRedisBackend checks that Config.Logger receives
// the Redis backend's own records (a subscriber connection lost and
// restored), and that no record of an ordinary run, with an outage,
// carries a lock token or session token.
func TestConfigLoggerReachesRedisBackend(t *testing.T) {
	srv := redistest.Start(t)
	rec := coordtest.NewLogRecorder(slog.LevelDebug)
	b := open(t, nil, backend.Config{URL: srv.URL() + "/0?max_retries=-1", Logger: slog.New(rec)})
	ctx := t.Context()
	var secrets []string

	lk, err := b.Locker().Acquire(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, lk.Token())
	if _, err := b.Locker().Acquire(ctx, "job", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Errorf("second Acquire: %v, want ErrNotAcquired", err)
	}
	s, err := b.Sessions().Create(ctx, "user-1", map[string]any{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, s.ID)
	if _, err := b.Sessions().Touch(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	r, err := b.Sessions().Rotate(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, r.ID)
	if _, err := b.Sessions().Get(ctx, s.ID); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Get of a rotated-out token: %v, want ErrNotFound", err)
	}
	if _, err := b.Invalidator().Subscribe(ctx, func(coord.Invalidation) {}); err != nil {
		t.Fatal(err)
	}
	if h := b.Health(ctx); h.Status != coord.Healthy {
		t.Fatalf("Health %+v", h)
	}

	srv.Kill(t)
	if _, err := b.Sessions().Get(ctx, r.ID); !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("Get with the server down: %v, want ErrUnavailable", err)
	}
	coordtest.Eventually(t, 5*time.Second, func() bool { return len(rec.Find("coord/redis: subscriber connection")) > 0 },
		"the Redis backend's subscriber record on Config.Logger")
	srv.Restart(t)
	coordtest.Eventually(t, 10*time.Second, func() bool { return b.Health(ctx).Status == coord.Healthy }, "healthy again")
	if err := lk.Release(ctx); err == nil {
		// The restart emptied the server: the lease is gone.
		t.Error("Release after the server lost its data: no error")
	}
	if err := b.Sessions().Delete(ctx, r.ID); err != nil {
		t.Error(err)
	}
	if len(rec.Find("coord/redis: command connection")) == 0 {
		t.Errorf("no record of the command connection's state; records:\n%s", dump(rec.All()))
	}
	for _, r := range rec.All() {
		txt := r.Text()
		for _, sec := range secrets {
			if strings.Contains(txt, sec) {
				t.Errorf("record carries a token in clear: %s", txt)
			}
		}
	}
}

func dump(rs []coordtest.LogRecord) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.Text())
		b.WriteByte('\n')
	}
	return b.String()
}
