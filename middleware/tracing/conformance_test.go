package tracing_test

import (
	"context"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/conformance"
	"github.com/cgn-bot/coord/middleware/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// harness gives the suite memory nodes of one hub, each decorated by a
// Tracer.
type harness struct {
	hub *memory.Hub
	tr  *tracing.Tracer
}

var (
	_ conformance.SubscriptionCutter = (*harness)(nil)
	_ conformance.ForeignPublisher   = (*harness)(nil)
)

func (h *harness) NewInstance(t *testing.T) coord.Backend {
	b := h.tr.Backend(h.hub.NewNode(nil))
	t.Cleanup(func() { _ = b.Close(context.WithoutCancel(t.Context())) })
	return b
}

func (h *harness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{CutSubscription: true, ForeignPublish: true}
}

// PublishRaw publishes raw bytes on one of the hub's wire channels.
func (h *harness) PublishRaw(t *testing.T, channel string, payload []byte) {
	if err := h.hub.PublishRaw(channel, payload); err != nil {
		t.Fatalf("PublishRaw(%q): %v", channel, err)
	}
}

// CutSubscription reaches the memory node through the decorator.
func (h *harness) CutSubscription(t *testing.T, instance coord.Backend) {
	var n *memory.Node
	if !coord.As(instance, &n) {
		t.Fatalf("coord.As found no *memory.Node in %T", instance)
	}
	n.CutSubscription()
}

// TestConformance runs the suite on traced memory nodes (every span
// recorded), proof that the decorator changes nothing the suite can see.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		return &harness{hub: memory.NewHub(nil), tr: tracing.New(tracing.WithTracerProvider(tp))}
	})
}
