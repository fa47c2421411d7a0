package metrics_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/middleware/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// The metrics decorator wraps a whole backend; with namespace "skynetbot"
// the Node design's dashboards work unchanged.
func ExampleMiddleware_Backend() {
	reg := prometheus.NewRegistry() // or prometheus.DefaultRegisterer
	m, err := metrics.New(reg, &metrics.Options{
		Namespace: "skynetbot",
		// Resource names are user data: keep a known few as labels.
		ResourceLabel: metrics.Allow("nightly-report"),
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	b := m.Backend(memory.NewHub(nil).New(nil))
	defer b.Close(ctx)

	err = coord.WithLock(ctx, b.Locker(), "nightly-report", func(ctx context.Context) error {
		return b.Invalidator().Invalidate(ctx, "report:latest", nil)
	})
	if err != nil {
		panic(err)
	}

	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if !strings.Contains(mf.GetName(), "distributed_") && !strings.Contains(mf.GetName(), "redis_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			fmt.Printf("%s{%s} %v\n", mf.GetName(), strings.Join(labels, ","), v)
		}
	}
	// Output:
	// skynetbot_distributed_cache_invalidations_sent_total{type="pattern"} 0
	// skynetbot_distributed_cache_invalidations_sent_total{type="single"} 1
	// skynetbot_distributed_cache_messages_received_total{channel="cgn:cache:invalidate"} 0
	// skynetbot_distributed_cache_messages_received_total{channel="cgn:cache:invalidate:pattern"} 0
	// skynetbot_distributed_cache_messages_received_total{channel="cgn:shard:event"} 0
	// skynetbot_distributed_lock_acquisitions_total{resource="nightly-report",status="acquired"} 1
	// skynetbot_distributed_lock_acquisitions_total{resource="nightly-report",status="failed"} 0
	// skynetbot_distributed_locks_active{} 0
	// skynetbot_distributed_shard_events_sent_total{event="all"} 0
	// skynetbot_redis_connection_state{} 1
}
