package memory

import (
	"context"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// BenchmarkRateAllow is one GCRA decision on a hot key (target: ≤ 300 ns,
// 0 allocations).
func BenchmarkRateAllow(b *testing.B) {
	rl := benchNode(b).RateLimiter()
	ctx := context.Background()
	l := coord.Limit{Rate: 1_000_000, Period: time.Second}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rl.Allow(ctx, "hot", l, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRateAllowWindow is one sliding window decision on a hot key.
func BenchmarkRateAllowWindow(b *testing.B) {
	rl := benchNode(b).RateLimiter()
	ctx := context.Background()
	l := coord.Limit{Rate: 1000, Period: time.Millisecond, Window: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rl.Allow(ctx, "hot", l, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRateAllowAllocs(t *testing.T) {
	n := NewHub(nil).New(nil)
	defer func() { _ = n.Close(context.Background()) }()
	rl := n.RateLimiter()
	ctx := context.Background()
	for _, l := range []coord.Limit{
		{Rate: 1_000_000, Period: time.Second},
		{Rate: 1000, Period: time.Millisecond, Window: true},
	} {
		_, _ = rl.Allow(ctx, "hot", l, 1)
		if a := testing.AllocsPerRun(200, func() { _, _ = rl.Allow(ctx, "hot", l, 1) }); a != 0 {
			t.Errorf("%s: %v allocations per decision, want 0", l, a)
		}
	}
}
