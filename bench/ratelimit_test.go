package main

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// TestGCRAMatchesRedisRate is a differential test of coord's GCRA
// arithmetic against go-redis/redis_rate v10 on one server: the same
// random requests on a key of each, made back to back, get the same
// decisions, the same Remaining when allowed (within one: redis_rate
// truncates a float), and the same RetryAfter and ResetAfter within the
// time between the calls of this step and of the last (an idle key's TAT
// starts at the time of the call). The limits have
// whole-microsecond emission intervals, where coord rounds nothing.
func TestGCRAMatchesRedisRate(t *testing.T) {
	ctx := context.Background()
	srv, err := startServer(ctx, "redis-server")
	if err != nil {
		t.Skipf("no redis-server: %v", err)
	}
	defer srv.stop()
	cc, pc := srv.newClient(), srv.newClient()
	defer cc.Close()
	defer pc.Close()
	be, err := coordredis.New(cc, &coordredis.Options{Prefix: "oracle:"})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close(ctx)
	peer := redis_rate.NewLimiter(pc)
	rng := rand.New(rand.NewPCG(1, 2))
	const tolerance = 5 * time.Millisecond
	compared, denied, boundary := 0, 0, 0
	for li, l := range []coord.Limit{
		{Rate: 10, Period: time.Second, Burst: 5},
		{Rate: 4, Period: 2 * time.Second, Burst: 8},
		{Rate: 100, Period: time.Second, Burst: 1},
	} {
		pl := redis_rate.Limit{Rate: l.Rate, Burst: l.Size(), Period: l.Period}
		key := "k" + string(rune('a'+li))
		for step := range 40 {
			n := 1 + rng.IntN(l.Size())
			start := time.Now()
			d, err := be.RateLimiter().Allow(ctx, key, l, n)
			if err != nil {
				t.Fatal(err)
			}
			p, err := peer.AllowN(ctx, key, pl, n)
			if err != nil {
				t.Fatal(err)
			}
			apart := time.Since(start)
			if apart > tolerance {
				// Too far apart to compare (a busy machine): the states
				// may differ by that much, so both start again.
				if err := be.RateLimiter().Reset(ctx, key); err != nil {
					t.Fatal(err)
				}
				if err := peer.Reset(ctx, key); err != nil {
					t.Fatal(err)
				}
				continue
			}
			compared++
			if !d.Allowed {
				denied++
			}
			if d.Allowed != (p.Allowed > 0) {
				// Only an allowance that comes back within the calls'
				// gaps may tell them apart: the one that denied must
				// have been about to allow. The states then differ, so
				// both start again.
				retry := d.RetryAfter
				if d.Allowed {
					retry = p.RetryAfter
				}
				if retry > 2*tolerance || boundary > 5 {
					t.Fatalf("%s step %d n=%d: coord %+v, redis_rate %+v, %v apart", l, step, n, d, p, apart)
				}
				boundary++
				if err := be.RateLimiter().Reset(ctx, key); err != nil {
					t.Fatal(err)
				}
				if err := peer.Reset(ctx, key); err != nil {
					t.Fatal(err)
				}
				continue
			}
			// redis_rate truncates a float quotient, coord floors an
			// exact one: they may differ by one at a boundary.
			if d.Allowed && (d.Remaining < p.Remaining-1 || d.Remaining > p.Remaining+1) {
				t.Fatalf("%s step %d n=%d: Remaining coord %d, redis_rate %d", l, step, n, d.Remaining, p.Remaining)
			}
			if !d.Allowed && absDur(d.RetryAfter-p.RetryAfter) > 2*tolerance {
				t.Fatalf("%s step %d n=%d: RetryAfter coord %v, redis_rate %v", l, step, n, d.RetryAfter, p.RetryAfter)
			}
			if absDur(d.ResetAfter-p.ResetAfter) > 2*tolerance {
				t.Fatalf("%s step %d n=%d: ResetAfter coord %v, redis_rate %v", l, step, n, d.ResetAfter, p.ResetAfter)
			}
			if rng.IntN(4) == 0 {
				time.Sleep(time.Duration(rng.IntN(int(l.IntervalMicros()))) * time.Microsecond) // let some allowance come back
			}
		}
	}
	t.Logf("%d decisions compared, %d denied", compared, denied)
	if compared < 60 || denied < 10 {
		t.Fatalf("only %d decisions compared (%d denied): too few to tell", compared, denied)
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
