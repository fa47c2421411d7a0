// Package memharness runs the conformance suite on memory nodes of one
// hub, each seen through a decorator: the harness of the middleware
// packages' conformance tests.
//
// It is a package apart from coordtest because it imports backend/memory
// and conformance, while coordtest imports only the standard library so
// that the internal tests of every package can use it. Only _test.go
// files import it.
package memharness

import (
	"context"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/conformance"
)

// Harness gives the suite memory nodes of one hub, each decorated by
// Wrap. It can cut a node's subscription through the decorators (found
// with coord.As) and publish foreign messages on the hub.
type Harness struct {
	hub  *memory.Hub
	wrap func(coord.Backend) coord.Backend
}

var (
	_ conformance.SubscriptionCutter = (*Harness)(nil)
	_ conformance.ForeignPublisher   = (*Harness)(nil)
)

// New returns a Harness on a new hub whose instances are wrap applied to
// a new node.
func New(wrap func(coord.Backend) coord.Backend) *Harness {
	return &Harness{hub: memory.NewHub(nil), wrap: wrap}
}

// NewInstance returns a new decorated node, closed at the end of t.
func (h *Harness) NewInstance(t *testing.T) coord.Backend {
	b := h.wrap(h.hub.New(nil))
	t.Cleanup(func() { _ = b.Close(context.WithoutCancel(t.Context())) })
	return b
}

// Capabilities declares a cuttable subscription and foreign publishing.
func (h *Harness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{CutSubscription: true, ForeignPublish: true}
}

// PublishRaw publishes raw bytes on one of the hub's wire channels, as
// another program would.
func (h *Harness) PublishRaw(t *testing.T, channel string, payload []byte) {
	if err := h.hub.PublishRaw(channel, payload); err != nil {
		t.Fatalf("PublishRaw(%q): %v", channel, err)
	}
}

// CutSubscription reaches the memory node through the decorators.
func (h *Harness) CutSubscription(t *testing.T, instance coord.Backend) {
	var n *memory.Backend
	if !coord.As(instance, &n) {
		t.Fatalf("coord.As found no *memory.Backend in %T", instance)
	}
	n.CutSubscription()
}
