package conformance_test

import (
	"context"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/conformance"
)

// memHarness gives the suite the Nodes of one memory Hub. A Redis harness
// would instead hand out clients of one server under a key and channel
// prefix of its own.
type memHarness struct{ hub *memory.Hub }

// NewInstance returns a new Node of the Hub, closed when the test ends.
func (h memHarness) NewInstance(t *testing.T) coord.Backend {
	n := h.hub.New(nil)
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

// Capabilities declares the fault hooks memHarness implements.
func (memHarness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{CutSubscription: true}
}

// CutSubscription simulates the loss of a Node's subscriber connection.
func (memHarness) CutSubscription(_ *testing.T, instance coord.Backend) {
	instance.(*memory.Backend).CutSubscription()
}

// A backend's tests run the suite with a HarnessMaker that builds a fresh
// harness for every case. In a _test.go file of the backend's package:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, newHarness)
//	}
//
// or, for one interface, conformance.RunLocker(t, newHarness).
func ExampleRun() {
	newHarness := func(t *testing.T) conformance.Harness {
		return memHarness{hub: memory.NewHub(nil)}
	}
	var maker conformance.HarnessMaker = newHarness
	_ = maker // conformance.Run(t, maker) inside a Test function
}
