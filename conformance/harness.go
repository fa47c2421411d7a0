package conformance

import (
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// Harness gives the suite instances of one backend. A suite case makes a
// fresh Harness for itself (see [HarnessMaker]), so state never leaks from
// one case to another: a memory harness makes a new Hub, a Redis harness a
// new key prefix on the same server.
type Harness interface {
	// NewInstance returns a new instance that shares state with every
	// other instance from this Harness, as a second process on the same
	// backend would. The harness closes it at the end of the test if the
	// test did not; closing twice must be harmless.
	NewInstance(t *testing.T) coord.Backend
	// Capabilities declares what the backend and the harness can do. The
	// suite runs the cases that need a capability only when it is
	// declared, and fails when a declared capability is missing or an
	// undeclared one is offered.
	Capabilities() Capabilities
}

// HarnessMaker makes a fresh Harness for one suite case.
type HarnessMaker func(t *testing.T) Harness

// Capabilities declares a backend's and a harness's optional abilities.
type Capabilities struct {
	// CutSubscription: the Harness implements [SubscriptionCutter].
	CutSubscription bool
	// Restart: the Harness implements [Restarter].
	Restart bool
	// ForeignPublish: the Harness implements [ForeignPublisher].
	ForeignPublish bool
	// LeaseGranularity is the shortest lease the backend keeps to its
	// length, and the precision of its expiry (an etcd lease is whole
	// seconds). Every lease a case asks for, and every bound that waits
	// on an expiry, is scaled to it. Zero means 1ms (the memory backend,
	// Redis); a negative value fails the CapabilitiesHonest case.
	LeaseGranularity time.Duration
	// Unsupported lists the primitives the backend does not provide: its
	// parts for them must fail with [coord.ErrUnsupported] (the
	// UnsupportedSaysSo case checks it), and the cases about them are
	// skipped. Every primitive not listed must work.
	Unsupported []Primitive
}

// Primitive names a part of a [coord.Backend] that a backend may lack.
type Primitive string

// The primitives a backend may lack.
const (
	RWLocks    Primitive = "RWLocker"
	Semaphores Primitive = "Semaphores"
	Elections  Primitive = "Elector"
	Jobs       Primitive = "Jobs"
	RateLimits Primitive = "RateLimiter"
	Streams    Primitive = "Streams"
)

// lacks reports whether caps declares p unsupported.
func (caps Capabilities) lacks(p Primitive) bool {
	for _, u := range caps.Unsupported {
		if u == p {
			return true
		}
	}
	return false
}

// SubscriptionCutter is a fault hook: it cuts an instance's subscriber
// connection (on Redis, CLIENT KILL TYPE pubsub). The instance must notice,
// reconnect by itself, and tell its invalidation subscribers to purge.
type SubscriptionCutter interface {
	CutSubscription(t *testing.T, instance coord.Backend)
}

// Restarter is a fault hook: it restarts the server under every instance
// (state may be lost, as with a Redis without persistence). Instances must
// reconnect by themselves.
type Restarter interface {
	Restart(t *testing.T)
}

// ForeignPublisher is a fault hook: it publishes raw bytes on the wire
// channel for invalidations of single keys ("invalidate"), of patterns
// ("pattern") or for events ("event"), as another program would. The suite
// uses it to prove malformed messages are counted and dropped.
type ForeignPublisher interface {
	PublishRaw(t *testing.T, channel string, payload []byte)
}
