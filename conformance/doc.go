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
// Every lease a case asks for and every bound it checks comes from one
// table of durations, scaled by the lease granularity the harness
// declares in [Capabilities.LeaseGranularity]: the shortest lease the
// backend keeps to its length, and the precision of its expiry. Zero
// means 1ms, right for the memory backend and for Redis (PX); a backend
// whose leases are whole seconds, such as etcd's, declares it:
//
//	func (harness) Capabilities() conformance.Capabilities {
//		return conformance.Capabilities{LeaseGranularity: time.Second}
//	}
//
// Lease lengths, and the slack allowed on an expiry, are then at least
// two granules (an auto-renewed lease at least three, renewed at a third
// of it). At 1ms, leases a case lets expire live 150 to 400ms, a lease
// that must survive on auto-renewal 2s (it survives a stall of 1.3s),
// and the loss of an expired lease must be seen within 1.85s of its end;
// so the whole suite runs in seconds, and most cases run in parallel.
//
// The bounds that separate a broken mechanism from a slow machine do not
// scale: a waiter must hold the lease within 100ms of a release although
// its retry delay is 2s, twenty times longer (one slow round in five is
// forgiven); a wait must end within 500ms of its ctx; a message must
// arrive within 3s. Cases that measure latency, and the one that counts
// goroutines, run alone. Run the suite with -race, and with goleak in
// TestMain (goleak.VerifyTestMain) to check that closed instances leave
// nothing running.
package conformance
