package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// TestRateSweepKeepsLiveState: the lazy sweep forgets expired keys, so
// the state does not grow with every key ever used, and forgets nothing
// that still matters, whatever the limit of the call that triggers it (a
// window of a minute outlives the sweep of millisecond windows).
func TestRateSweepKeepsLiveState(t *testing.T) {
	n := NewHub(nil).New(nil)
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	rl := n.RateLimiter()
	ctx := t.Context()
	long := coord.Limit{Rate: 1, Period: time.Minute, Window: true}
	longG := coord.Limit{Rate: 1, Period: time.Minute}
	for _, l := range []coord.Limit{long, longG} {
		if d, err := rl.Allow(ctx, "long", l, 1); err != nil || !d.Allowed {
			t.Fatalf("%s: first event: %+v, %v", l, d, err)
		}
	}
	short := coord.Limit{Rate: 1, Period: time.Millisecond, Window: true}
	shortG := coord.Limit{Rate: 1, Period: time.Millisecond}
	for round := range 4 {
		time.Sleep(2 * time.Millisecond) // let the short states expire
		for i := range minSweep {
			key := fmt.Sprintf("k%d-%d", round, i)
			if _, err := rl.Allow(ctx, key, short, 1); err != nil {
				t.Fatal(err)
			}
			if _, err := rl.Allow(ctx, key, shortG, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, l := range []coord.Limit{long, longG} {
		if d, err := rl.Allow(ctx, "long", l, 1); err != nil || d.Allowed {
			t.Fatalf("%s: second event within the period allowed (%+v, %v): the sweep forgot live state", l, d, err)
		}
	}
	s := &n.hub.rates
	s.mu.Lock()
	size := len(s.gcra) + len(s.window)
	s.mu.Unlock()
	if size > 4*minSweep {
		t.Fatalf("%d states kept after 4 rounds of %d expiring keys: expired state is not forgotten", size, 2*minSweep)
	}
}
