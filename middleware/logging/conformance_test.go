package logging_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/conformance"
	"github.com/cgn-bot/coord/middleware/logging"
)

// harness gives the suite memory nodes of one hub, each decorated by wrap.
type harness struct {
	hub  *memory.Hub
	wrap func(coord.Backend) coord.Backend
}

var (
	_ conformance.SubscriptionCutter = (*harness)(nil)
	_ conformance.ForeignPublisher   = (*harness)(nil)
)

func (h *harness) NewInstance(t *testing.T) coord.Backend {
	b := h.wrap(h.hub.NewNode(nil))
	t.Cleanup(func() { _ = b.Close(context.WithoutCancel(t.Context())) })
	return b
}

func (h *harness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{CutSubscription: true, ForeignPublish: true}
}

// PublishRaw publishes raw bytes on one of the hub's wire channels, as
// another program would.
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

// TestConformance runs the suite on memory nodes decorated by logging at
// Debug (every record built and written), proof that the decorator
// changes nothing the suite can see.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
		l := logging.New(logger, nil)
		return &harness{hub: memory.NewHub(nil), wrap: l.Backend}
	})
}
