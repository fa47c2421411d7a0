package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/conformance"
)

// harness runs the conformance suite on one memory Hub: each instance is
// a Backend of it.
type harness struct{ hub *memory.Hub }

var (
	_ conformance.SubscriptionCutter = (*harness)(nil)
	_ conformance.ForeignPublisher   = (*harness)(nil)
	_ conformance.Restarter          = (*harness)(nil)
	_ conformance.ClockSkewer        = (*harness)(nil)
)

func (h *harness) NewInstance(t *testing.T) coord.Backend {
	t.Helper()
	n := h.hub.New(nil)
	t.Cleanup(func() {
		if err := n.Close(context.Background()); err != nil && !errors.Is(err, coord.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return n
}

func (h *harness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{CutSubscription: true, ForeignPublish: true, Restart: true}
}

// CutSubscription simulates a lost subscriber connection on the Backend.
func (h *harness) CutSubscription(t *testing.T, instance coord.Backend) {
	t.Helper()
	n, ok := instance.(*memory.Backend)
	if !ok {
		t.Fatalf("instance %T is not a *memory.Backend", instance)
	}
	n.CutSubscription()
}

// SkewClock shifts the Backend's own clock.
func (h *harness) SkewClock(t *testing.T, instance coord.Backend, d time.Duration) {
	t.Helper()
	n, ok := instance.(*memory.Backend)
	if !ok {
		t.Fatalf("instance %T is not a *memory.Backend", instance)
	}
	n.SkewClock(d)
}

// Restart restarts the Hub as a Redis without persistence restarts:
// leases and sessions are lost, every node reconnects.
func (h *harness) Restart(t *testing.T) {
	t.Helper()
	h.hub.Restart()
}

// PublishRaw publishes raw bytes on one of the Hub's wire channels, as
// another program would.
func (h *harness) PublishRaw(t *testing.T, channel string, payload []byte) {
	t.Helper()
	if err := h.hub.PublishRaw(channel, payload); err != nil {
		t.Fatalf("PublishRaw(%q): %v", channel, err)
	}
}

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		return &harness{hub: memory.NewHub(nil)}
	})
}
