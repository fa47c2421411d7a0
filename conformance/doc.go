// Package conformance is the test suite every coord backend passes: the
// same cases, with the same bounds, for the memory backend, Redis, Redis
// Cluster, and the middleware over a backend. A backend that passes it
// keeps the guarantees of package coord: leases that exclude, with fences
// that strictly increase and waiters woken by a release rather than by
// polling; sessions with 256-bit tokens never adopted when forged, merged
// field by field without loss, values round-tripping exactly, expiry
// honoured by every view; invalidations and events reaching every other
// instance in publish order, never the sender unless asked, with a purge
// after any gap; the same refusal of bad input everywhere; and a Close
// that releases, ends and stops everything an instance started.
//
// # Running the suite on a backend
//
// Write a [Harness] for the backend and a test that passes a
// [HarnessMaker] to [Run] (or to one of [RunBackend], [RunLocker],
// [RunSessionStore], [RunInvalidator] and [RunEventBus]):
//
//	type harness struct{ hub *memory.Hub }
//
//	func (h harness) NewInstance(t *testing.T) coord.Backend {
//		n := h.hub.New(nil)
//		t.Cleanup(func() { _ = n.Close(context.Background()) })
//		return n
//	}
//
//	func (harness) Capabilities() conformance.Capabilities {
//		return conformance.Capabilities{}
//	}
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(t *testing.T) conformance.Harness {
//			return harness{hub: memory.NewHub(nil)}
//		})
//	}
//
// Every case is a named subtest (for example
// TestConformance/Locker/WaiterWokenByRelease) and gets a fresh Harness
// from the maker, so -run selects cases and no state leaks between them.
// A harness must therefore isolate everything per Harness: a memory
// harness makes a new Hub; a Redis harness gives each Harness its own key
// prefix and its own channel prefix on the shared server, since cases run
// in parallel and a subscriber must not see another case's messages.
// NewInstance returns a new instance on the same state, as a second
// process would be; the harness closes it when the test ends (Close twice
// must be harmless).
//
// # Capabilities and fault hooks
//
// A harness declares in [Capabilities] which fault hooks it offers, and
// implements the matching interface: [SubscriptionCutter],
// [Restarter], [ForeignPublisher]. The cases that need a hook are skipped,
// with the reason, when it is not declared. The suite checks declarations
// both ways: a declared capability whose interface the harness does not
// implement fails, and so does an implemented hook that is not declared.
//
// # Timing
//
// Leases and sessions in the suite live a few hundred milliseconds, so
// the whole suite runs in seconds; most cases run in parallel. The bounds
// separate a broken mechanism from a slow machine: a waiter must hold the
// lease within 100ms of a release although its retry delay is 2s (one
// slow round in five is forgiven), and messages must arrive within 3s.
// Cases that measure latency, and the one that counts goroutines, run
// alone. Run the suite with -race, and with goleak in TestMain
// (goleak.VerifyTestMain) to check that closed instances leave nothing
// running.
package conformance
