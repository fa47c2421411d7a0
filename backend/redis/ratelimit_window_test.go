package redis_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

func newRateBackend(t *testing.T, srv *redistest.Server) (*coordredis.Backend, *goredis.Client) {
	t.Helper()
	c := goredis.NewClient(srv.Options())
	t.Cleanup(func() { _ = c.Close() })
	b, err := coordredis.New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b, c
}

// TestRateWindowMemoryFull: with Redis refusing writes that grow memory,
// a window decision that would record events is an error, never an
// allow; a denial still answers (it writes nothing); once memory is
// back, decisions allow.
func TestRateWindowMemoryFull(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	b, _ := newRateBackend(t, srv)
	rl := b.RateLimiter()
	l := coord.Limit{Rate: 2, Period: time.Second, Window: true}
	long := coord.Limit{Rate: 2, Period: time.Hour, Window: true}
	if d, err := rl.Allow(ctx, "held", long, 2); err != nil || !d.Allowed {
		t.Fatalf("Allow(held, 2) = %+v, %v", d, err)
	}
	lift := fillMemory(t, srv)
	lifted := false
	defer func() {
		if !lifted {
			lift()
		}
	}()
	for _, c := range []struct {
		key string
		l   coord.Limit
		n   int
	}{
		{"fresh", l, 1}, {"fresh", l, 2}, {"held-other", long, 1},
		{"gcra", coord.Limit{Rate: 2, Period: time.Second}, 1},
	} {
		d, err := rl.Allow(ctx, c.key, c.l, c.n)
		if d.Allowed || !errors.Is(err, coord.ErrUnavailable) {
			t.Errorf("Allow(%s, %s, %d) with memory full = %+v, %v; want ErrUnavailable and no allow", c.key, c.l, c.n, d, err)
		}
	}
	if d, err := rl.Allow(ctx, "held", long, 1); err != nil || d.Allowed || d.RetryAfter <= 0 {
		t.Errorf("Allow(held) over a full window with memory full = %+v, %v; want a denial", d, err)
	}
	lift()
	lifted = true
	if d, err := rl.Allow(ctx, "fresh", l, 1); err != nil || !d.Allowed {
		t.Errorf("Allow(fresh) once memory is back = %+v, %v", d, err)
	}
}

// TestRateWindowMemoryFullTrim: an Allow whose window has events to trim
// (events that left it, the key still there) is refused with memory
// full: the trim, a write that frees memory, must not open the way for
// the ZADD that grows it.
func TestRateWindowMemoryFullTrim(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	b, c := newRateBackend(t, srv)
	rl := b.RateLimiter()
	_, wk := b.RateKeys("k")
	now, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// Two events of a 1 s window, one stamped 2 s ago (out of the
	// window, to trim) and one 100 ms ago (in it); the key lives on.
	old, recent := now.Add(-2*time.Second).UnixMicro(), now.Add(-100*time.Millisecond).UnixMicro()
	if err := c.ZAdd(ctx, wk,
		goredis.Z{Score: float64(old), Member: fmt.Sprintf("%d:1", old)},
		goredis.Z{Score: float64(recent), Member: fmt.Sprintf("%d:2", recent)}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.PExpire(ctx, wk, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	l := coord.Limit{Rate: 2, Period: time.Second, Window: true}
	lift := fillMemory(t, srv)
	defer lift()
	d, err := rl.Allow(ctx, "k", l, 1)
	if d.Allowed || !errors.Is(err, coord.ErrUnavailable) {
		t.Errorf("Allow over a window with an event to trim, memory full = %+v, %v; want ErrUnavailable and no allow", d, err)
	}
}

// TestRateWindowLimitLowered: a key holding more events in its window
// than a lower limit now allows (the limit lowered at a reload, or two
// instances passing different limits) gives a denial with Remaining 0,
// not an error; the higher limit still reads its own count.
func TestRateWindowLimitLowered(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	b, _ := newRateBackend(t, srv)
	rl := b.RateLimiter()
	high := coord.Limit{Rate: 5, Period: time.Minute, Window: true}
	low := coord.Limit{Rate: 2, Period: time.Minute, Window: true}
	if d, err := rl.Allow(ctx, "k", high, 4); err != nil || !d.Allowed || d.Remaining != 1 {
		t.Fatalf("Allow(4 of 5) = %+v, %v", d, err)
	}
	for _, n := range []int{1, 2} {
		d, err := rl.Allow(ctx, "k", low, n)
		if err != nil || d.Allowed || d.Remaining != 0 || d.RetryAfter <= 0 || d.RetryAfter > time.Minute {
			t.Errorf("Allow(%d) under a lowered limit = %+v, %v; want denied, Remaining 0, RetryAfter in (0, 1m]", n, d, err)
		}
		p, err := rl.Peek(ctx, "k", low)
		if err != nil || p.Allowed || p.Remaining != 0 {
			t.Errorf("Peek under a lowered limit = %+v, %v; want denied, Remaining 0", p, err)
		}
	}
	if d, err := rl.Allow(ctx, "k", high, 1); err != nil || !d.Allowed || d.Remaining != 0 {
		t.Errorf("Allow(1) under the higher limit = %+v, %v; want allowed, Remaining 0", d, err)
	}
}

// TestRateWindowStaleEvents: the decisions that count the window past
// events that left it (kept until a trim or the key's expiry) count only
// those in the window: on a key that holds more events than a lower
// limit's Rate, and on one that holds fewer, Allow and Peek alike.
func TestRateWindowStaleEvents(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	b, c := newRateBackend(t, srv)
	rl := b.RateLimiter()
	_, wk := b.RateKeys("k")
	high := coord.Limit{Rate: 5, Period: 300 * time.Millisecond, Window: true}
	low := coord.Limit{Rate: 2, Period: 300 * time.Millisecond, Window: true}
	long := coord.Limit{Rate: 8, Period: time.Minute, Window: true}
	// 6 events, the key kept for a minute by the last one's limit.
	if d, err := rl.Allow(ctx, "k", high, 5); err != nil || !d.Allowed {
		t.Fatalf("Allow(5 of 5) = %+v, %v", d, err)
	}
	if d, err := rl.Allow(ctx, "k", long, 1); err != nil || !d.Allowed || d.Remaining != 2 {
		t.Fatalf("Allow(1 of 8 a minute) over 5 events = %+v, %v; want Remaining 2", d, err)
	}
	coordtest.Eventually(t, 2*time.Second, func() bool {
		p, err := rl.Peek(ctx, "k", high)
		return err == nil && p.Allowed && p.Remaining == 5 && p.ResetAfter == 0
	}, "the 6 events left the short window")
	if n := c.ZCard(ctx, wk).Val(); n != 6 {
		t.Fatalf("the key holds %d events, want the 6 (no decision trimmed them)", n)
	}
	want := []struct {
		l         coord.Limit
		n         int
		allowed   bool
		remaining int
	}{
		{low, 1, true, 1},   // 6 held, more than Rate: trimmed, then counted
		{low, 1, true, 0},   // 1 held, fewer than Rate
		{low, 1, false, 0},  // 2 held, both in the window
		{high, 3, true, 0},  // 2 in the window, 3 more make 5
		{high, 1, false, 0}, // 5
	}
	for i, w := range want {
		d, err := rl.Allow(ctx, "k", w.l, w.n)
		if err != nil || d.Allowed != w.allowed || d.Remaining != w.remaining {
			t.Fatalf("step %d: Allow(%s, %d) = %+v, %v; want allowed %v, Remaining %d", i, w.l, w.n, d, err, w.allowed, w.remaining)
		}
	}
	if n := c.ZCard(ctx, wk).Val(); n != 5 {
		t.Errorf("the key holds %d events, want the 5 in the window", n)
	}
	// Fewer events held than the limit's Rate, none in the window: the
	// count is 0, not the events held.
	if d, err := rl.Allow(ctx, "f", high, 1); err != nil || !d.Allowed || d.Remaining != 4 {
		t.Fatalf("Allow(f) = %+v, %v", d, err)
	}
	if d, err := rl.Allow(ctx, "f", long, 1); err != nil || !d.Allowed || d.Remaining != 6 {
		t.Fatalf("Allow(f, long) = %+v, %v", d, err)
	}
	coordtest.Eventually(t, 2*time.Second, func() bool {
		p, err := rl.Peek(ctx, "f", high)
		return err == nil && p.Allowed && p.Remaining == 5 && p.ResetAfter == 0
	}, "f's events left the short window")
	if d, err := rl.Allow(ctx, "f", high, 2); err != nil || !d.Allowed || d.Remaining != 3 || d.ResetAfter != high.Period {
		t.Errorf("Allow(f, 2 of 5) with none in the window = %+v, %v; want allowed, Remaining 3, ResetAfter 300ms", d, err)
	}
	if d, err := rl.Allow(ctx, "f", high, 1); err != nil || !d.Allowed || d.Remaining != 2 {
		t.Errorf("Allow(f, 1 of 5) with 2 in the window = %+v, %v; want allowed, Remaining 2", d, err)
	}
}

// TestRateWindowForeignKey: a window key of another type (a foreign
// writer) is an error for Allow and Peek, never a decision.
func TestRateWindowForeignKey(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	b, c := newRateBackend(t, srv)
	rl := b.RateLimiter()
	_, wk := b.RateKeys("k")
	if err := c.Set(ctx, wk, "junk", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2} {
		l := coord.Limit{Rate: 3, Period: time.Minute, Window: true}
		if d, err := rl.Allow(ctx, "k", l, n); !errors.Is(err, coord.ErrUnavailable) || d != (coord.RateDecision{}) {
			t.Errorf("Allow(%d) over a string key = %+v, %v; want the zero decision and ErrUnavailable", n, d, err)
		}
	}
	if d, err := rl.Peek(ctx, "k", coord.Limit{Rate: 3, Period: time.Minute, Window: true}); !errors.Is(err, coord.ErrUnavailable) || d.Allowed {
		t.Errorf("Peek over a string key = %+v, %v; want ErrUnavailable", d, err)
	}
}
