package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/redistest"
)

func TestRateShowAndReset(t *testing.T) {
	e := newEnv(t, redistest.Start(t))
	ctx := context.Background()
	l := coord.Limit{Rate: 2, Period: time.Minute}
	if _, err := e.b.RateLimiter().Allow(ctx, "user:1", l, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.RateLimiter().Allow(ctx, "user:1", coord.Limit{Rate: 5, Period: time.Minute, Window: true}, 3); err != nil {
		t.Fatal(err)
	}

	r := e.run("rate", "show", "user:1", "-o", "json", "--rate", "2", "--period", "1m")
	wantCode(t, r, exitOK)
	var got rateJSON
	decode(t, r, &got)
	if got.Key != "user:1" || got.GCRAResetMs < 59_000 || got.GCRAResetMs > 60_000 || got.WindowEvents != 3 || got.WindowResetMs < 59_000 {
		t.Fatalf("rate show = %+v", got)
	}
	if got.Decision == nil || got.Decision.Allowed || got.Decision.Remaining != 0 || got.Decision.RetryAfterMs < 29_000 {
		t.Fatalf("rate show's decision = %+v, want denied, 0 remaining, retry in about 30s", got.Decision)
	}

	r = e.run("rate", "show", "user:1")
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "user:1") || !strings.Contains(r.stdout, "WINDOW EVENTS") {
		t.Fatalf("table output:\n%s", r)
	}

	r = e.run("rate", "reset", "user:1")
	wantCode(t, r, exitOK)
	wantCode(t, e.run("rate", "show", "user:1"), exitNotFound)
	if d, err := e.b.RateLimiter().Peek(ctx, "user:1", l); err != nil || d.Remaining != 2 {
		t.Fatalf("after rate reset: %+v, %v", d, err)
	}

	wantCode(t, e.run("rate", "show"), exitUsage)
	wantCode(t, e.run("rate", "show", "k", "--rate", "0", "--period", "1s"), exitUsage)
	wantCode(t, e.run("rate", "frob", "k"), exitUsage)
}
