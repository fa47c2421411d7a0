package conformance_test

import (
	"context"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/conformance"
	"github.com/cgn-bot/coord/driver"
)

// lacking is a memory instance that provides none of the primitives a
// backend may lack, as a backend written before them would.
type lacking struct{ *memory.Backend }

func (lacking) RWLocker() coord.RWLocker       { return driver.UnsupportedRWLocker{} }
func (lacking) Semaphores() coord.Semaphores   { return driver.UnsupportedSemaphores{} }
func (lacking) Elector() coord.Elector         { return driver.UnsupportedElector{} }
func (lacking) Jobs() coord.Jobs               { return driver.UnsupportedJobs{} }
func (lacking) RateLimiter() coord.RateLimiter { return driver.UnsupportedRateLimiter{} }
func (lacking) Streams() coord.Streams         { return driver.UnsupportedStreams{} }

type lackingHarness struct{ hub *memory.Hub }

func (h lackingHarness) NewInstance(t *testing.T) coord.Backend {
	n := h.hub.New(nil)
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return lacking{n}
}

func (lackingHarness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{Unsupported: []conformance.Primitive{
		conformance.RWLocks, conformance.Semaphores, conformance.Elections,
		conformance.Jobs, conformance.RateLimits, conformance.Streams,
	}}
}

// TestLackingBackend runs the Backend cases on a backend that declares
// every optional primitive unsupported: its parts must say so with
// coord.ErrUnsupported, and the rest of the Backend still passes.
func TestLackingBackend(t *testing.T) {
	maker := func(*testing.T) conformance.Harness { return lackingHarness{hub: memory.NewHub(nil)} }
	conformance.RunBackend(t, maker)
}
