package tracing_test

import (
	"context"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/middleware/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// BenchmarkAcquireRelease compares an Acquire and Release on a memory
// node, plain and traced (spans sampled and exported to a no-op
// exporter).
func BenchmarkAcquireRelease(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
	defer tp.Shutdown(context.Background())
	tr := tracing.New(tracing.WithTracerProvider(tp))
	noWatch := tracing.New(tracing.WithTracerProvider(tp), tracing.WithoutLossWatch())
	for _, c := range []struct {
		name string
		wrap func(coord.Backend) coord.Backend
	}{{"plain", func(b coord.Backend) coord.Backend { return b }}, {"traced", tr.Backend}, {"traced-nowatch", noWatch.Backend}} {
		b.Run(c.name, func(b *testing.B) {
			n := c.wrap(memory.NewHub(nil).NewNode(nil))
			defer n.Close(context.Background())
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				l, err := n.Locker().Acquire(ctx, "r")
				if err != nil {
					b.Fatal(err)
				}
				if err := l.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
