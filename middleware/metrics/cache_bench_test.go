package metrics_test

import (
	"fmt"
	"testing"

	"github.com/cgn-bot/coord/cache"
	"github.com/cgn-bot/coord/middleware/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkCacheCollect measures a Gather of a registry with no near
// cache recorded and with ten: the difference is what a scrape pays for
// them (the caches' operations pay nothing).
func BenchmarkCacheCollect(b *testing.B) {
	for _, n := range []int{0, 10} {
		b.Run(fmt.Sprintf("caches=%d", n), func(b *testing.B) {
			reg := prometheus.NewRegistry()
			m, err := metrics.New(reg, nil)
			if err != nil {
				b.Fatal(err)
			}
			for i := range n {
				if _, err := m.Cache(fmt.Sprintf("cache%d", i), &statsOf{s: cache.Stats{Hits: 1, Entries: 1}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := reg.Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
