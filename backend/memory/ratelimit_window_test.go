package memory

import (
	"context"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// TestRateWindowLimitLowered: a key holding more events in its window
// than a lower limit allows (the limit lowered at a reload, or two
// instances passing different limits) is denied with Remaining 0, never
// a negative Remaining; the higher limit still reads its own count.
func TestRateWindowLimitLowered(t *testing.T) {
	n := NewHub(nil).New(nil)
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	rl := n.RateLimiter()
	ctx := t.Context()
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
