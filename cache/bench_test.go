package cache

import (
	"context"
	"fmt"
	"testing"
)

func benchCache(b *testing.B, n int) *Cache[int] {
	b.Helper()
	c, err := New[int](b.Context(), &fakeInvalidator{}, &Options{MaxSize: 2 * n})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	for i := range n {
		if err := c.Set(fmt.Sprintf("user:%d", i), i); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

func BenchmarkGetHit(b *testing.B) {
	c := benchCache(b, 1024)
	keys := benchKeys()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.Get(keys[i&1023]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}

func BenchmarkSet(b *testing.B) {
	c := benchCache(b, 1024)
	keys := benchKeys()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := c.Set(keys[i&1023], i); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func BenchmarkGetOrLoadHit(b *testing.B) {
	c := benchCache(b, 1024)
	keys := benchKeys()
	load := func(context.Context, string) (int, error) { return 0, nil }
	ctx := b.Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := c.GetOrLoad(ctx, keys[i&1023], load); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkDeletePattern measures a pattern eviction that matches no key,
// so the cache keeps its size: the cost of visiting every entry.
func BenchmarkDeletePattern(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			c := benchCache(b, n)
			b.ReportAllocs()
			for b.Loop() {
				c.evictPattern("session:*")
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/entry")
		})
	}
}

func benchKeys() []string {
	k := make([]string, 1024)
	for i := range k {
		k[i] = fmt.Sprintf("user:%d", i)
	}
	return k
}

// BenchmarkGetHitOtterBaseline reads the underlying otter cache directly:
// the difference to BenchmarkGetHit is this package's own cost.
func BenchmarkGetHitOtterBaseline(b *testing.B) {
	c := benchCache(b, 1024)
	keys := benchKeys()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.store.GetIfPresent(keys[i&1023]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}
