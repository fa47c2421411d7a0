package conformance_test

import (
	"context"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/conformance"
)

// coarseHarness is the memory backend declared with a lease granularity
// of whole seconds, as an etcd backend would declare it.
type coarseHarness struct{ hub *memory.Hub }

func (h coarseHarness) NewInstance(t *testing.T) coord.Backend {
	n := h.hub.New(nil)
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

func (coarseHarness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{LeaseGranularity: time.Second}
}

// TestCoarseGranularity runs the cases that time leases and sessions with
// a declared granularity of one second: every lease and idle TTL is then
// at least two seconds, and the cases still hold together (a case whose
// bounds did not scale with its leases would fail here).
func TestCoarseGranularity(t *testing.T) {
	if testing.Short() {
		t.Skip("leases of whole seconds take a while; skipped with -short")
	}
	maker := func(*testing.T) conformance.Harness { return coarseHarness{hub: memory.NewHub(nil)} }
	t.Run("Locker", func(t *testing.T) { conformance.RunLocker(t, maker) })
	t.Run("SessionStore", func(t *testing.T) { conformance.RunSessionStore(t, maker) })
}
