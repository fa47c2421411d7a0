package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/conformance"
	"github.com/cgn-bot/coord/middleware/logging"
	"github.com/cgn-bot/coord/middleware/metrics"
	"github.com/prometheus/client_golang/prometheus"
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
	b := h.wrap(h.hub.New(nil))
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

// CutSubscription reaches the memory node through the decorators.
func (h *harness) CutSubscription(t *testing.T, instance coord.Backend) {
	var n *memory.Backend
	if !coord.As(instance, &n) {
		t.Fatalf("coord.As found no *memory.Backend in %T", instance)
	}
	n.CutSubscription()
}

// TestConformance runs the suite on memory nodes decorated by metrics
// around logging (at Debug, so every record is built), proof that the
// decorators change nothing the suite can see. Each case gets its own
// registry, and the registry must gather without error afterwards.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		reg := prometheus.NewPedanticRegistry()
		m, err := metrics.New(reg, &metrics.Options{Namespace: "skynetbot"})
		if err != nil {
			t.Fatal(err)
		}
		logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
		l := logging.New(logger, nil)
		t.Cleanup(func() {
			if _, err := reg.Gather(); err != nil {
				t.Errorf("Gather after the case: %v", err)
			}
		})
		return &harness{
			hub:  memory.NewHub(nil),
			wrap: func(b coord.Backend) coord.Backend { return m.Backend(l.Backend(b)) },
		}
	})
}
