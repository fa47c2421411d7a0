package redis

import (
	"context"
	"errors"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/redistest"
)

// TestRateNeverAllowsOnError: with the server down, Allow fails with
// ErrUnavailable and a decision that does not allow; it works again once
// the server is back.
func TestRateNeverAllowsOnError(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := newTestBackend(t, func() *goredis.Options {
		o := srv.Options()
		o.MaxRetries = -1
		o.DialTimeout = 200 * time.Millisecond
		return o
	}, nil)
	rl := b.RateLimiter()
	l := coord.Limit{Rate: 10, Period: time.Second}
	if d, err := rl.Allow(t.Context(), "k", l, 1); err != nil || !d.Allowed {
		t.Fatalf("Allow with the server up = %+v, %v", d, err)
	}
	srv.Stop(t)
	for _, lim := range []coord.Limit{l, {Rate: 10, Period: time.Second, Window: true}} {
		d, err := rl.Allow(t.Context(), "k", lim, 1)
		if !errors.Is(err, coord.ErrUnavailable) || d.Allowed || d != (coord.RateDecision{}) {
			t.Fatalf("%s: Allow with the server down = %+v, %v; want the zero decision and ErrUnavailable", lim, d, err)
		}
		if _, err := rl.Peek(t.Context(), "k", lim); !errors.Is(err, coord.ErrUnavailable) {
			t.Fatalf("%s: Peek with the server down = %v, want ErrUnavailable", lim, err)
		}
	}
	if err := rl.Reset(t.Context(), "k"); !errors.Is(err, coord.ErrUnavailable) {
		t.Fatalf("Reset with the server down = %v, want ErrUnavailable", err)
	}
	srv.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := rl.Allow(t.Context(), "k", l, 1)
		if err == nil {
			if !d.Allowed {
				t.Fatalf("first decision after the restart denied: %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Allow still failing 10s after the restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRateKeys: one key per limited key and algorithm, in the key's own
// hash slot, expiring when it no longer matters; a foreign TAT counts as
// none; a large n in a window passes Lua's unpack limit.
func TestRateKeys(t *testing.T) {
	handoffServers(t, func(t *testing.T, opts func() *goredis.Options) {
		b, c := newTestBackend(t, opts, &Options{Prefix: "p:"})
		ctx := context.Background()
		rl := b.RateLimiter()
		gk, wk := b.RateKeys("a{b}")
		if gk != "p:rl:{a%7Bb%7D}" || wk != "p:rl:{a%7Bb%7D}:w" {
			t.Fatalf("RateKeys = %q, %q", gk, wk)
		}
		l := coord.Limit{Rate: 2, Period: 10 * time.Second}
		if _, err := rl.Allow(ctx, "a{b}", l, 1); err != nil {
			t.Fatal(err)
		}
		pttl := c.PTTL(ctx, gk).Val()
		if pttl <= 4*time.Second || pttl > 5*time.Second {
			t.Fatalf("PTTL of the TAT after one of 2 per 10s = %v, want 5s (the time until it is reached)", pttl)
		}
		w := coord.Limit{Rate: 5000, Period: 2 * time.Second, Window: true}
		if d, err := rl.Allow(ctx, "a{b}", w, 5000); err != nil || !d.Allowed || d.Remaining != 0 {
			t.Fatalf("5000 events at once in a window = %+v, %v", d, err)
		}
		if n := c.ZCard(ctx, wk).Val(); n != 5000 {
			t.Fatalf("window holds %d members, want 5000", n)
		}
		if pttl := c.PTTL(ctx, wk).Val(); pttl <= time.Second || pttl > 2*time.Second {
			t.Fatalf("PTTL of the window = %v, want its period", pttl)
		}
		if err := c.Set(ctx, gk, "junk", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if d, err := rl.Allow(ctx, "a{b}", l, 2); err != nil || !d.Allowed {
			t.Fatalf("Allow over a foreign TAT = %+v, %v; want it counted as none", d, err)
		}
		// A TAT beyond any this limit makes (a clock that stepped back):
		// the whole burst counts as taken, the wait is at most the
		// burst's span.
		if err := c.Set(ctx, gk, "9000000000000000", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if d, err := rl.Allow(ctx, "a{b}", l, 1); err != nil || d.Allowed || d.RetryAfter > 5*time.Second || d.ResetAfter > 10*time.Second {
			t.Fatalf("Allow over a TAT far ahead = %+v, %v; want denied within the burst's span", d, err)
		}
		if err := rl.Reset(ctx, "a{b}"); err != nil {
			t.Fatal(err)
		}
		if n := c.Exists(ctx, gk, wk).Val(); n != 0 {
			t.Fatalf("%d keys left after Reset", n)
		}
	})
}
