package metrics_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/cgn-bot/coord/backend"
	"github.com/cgn-bot/coord/cache"
	"github.com/cgn-bot/coord/middleware/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// A near cache is recorded by name; its Stats are read at each scrape.
func ExampleMiddleware_Cache() {
	ctx := context.Background()
	reg := prometheus.NewRegistry() // or prometheus.DefaultRegisterer
	var opener backend.Opener
	b, err := opener.Open(ctx, backend.Config{URL: "mem://example-cache", Registerer: reg})
	if err != nil {
		panic(err)
	}
	defer b.Close(ctx)
	// A Middleware over the same registry shares the backend's metrics.
	m, err := metrics.New(reg, nil)
	if err != nil {
		panic(err)
	}

	users, err := cache.New[string](ctx, b.Invalidator(), nil)
	if err != nil {
		panic(err)
	}
	defer users.Close()
	stop, err := m.Cache("users", users)
	if err != nil {
		panic(err)
	}
	defer stop()

	load := func(_ context.Context, key string) (string, error) { return "Ada", nil }
	for range 3 {
		_, hit, err := users.GetOrLoadHit(ctx, "user:1", load)
		fmt.Println("hit:", hit, err)
	}

	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		switch strings.TrimPrefix(mf.GetName(), "coord_") {
		case "cache_hits_total", "cache_misses_total", "cache_loads_total", "cache_entries":
			for _, m := range mf.GetMetric() {
				v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
				fmt.Printf("%s{cache=%q} %v\n", mf.GetName(), m.GetLabel()[0].GetValue(), v)
			}
		}
	}
	// Output:
	// hit: false <nil>
	// hit: true <nil>
	// hit: true <nil>
	// coord_cache_entries{cache="users"} 1
	// coord_cache_hits_total{cache="users"} 2
	// coord_cache_loads_total{cache="users"} 1
	// coord_cache_misses_total{cache="users"} 1
}
