package redis

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

// Defaults of [Options].
const (
	// DefaultPrefix starts every key and channel, the Node fleet's
	// (docs/WIRE.md).
	DefaultPrefix = "cgn:"
	// DefaultHealthInterval is how often the subscriber connection is
	// pinged.
	DefaultHealthInterval = time.Second
	// DefaultPingTimeout is how long a PING on the subscriber connection
	// may go unanswered before the connection is suspected down.
	DefaultPingTimeout = time.Second
	// DefaultDegradedLatency is the PING round trip above which Health
	// reports degraded.
	DefaultDegradedLatency = 250 * time.Millisecond
	// DefaultLockReplicaTimeout bounds the WAIT for replicas after an
	// acquire (of any lease) when [Options].LockReplicas is set.
	DefaultLockReplicaTimeout = 100 * time.Millisecond
	// DefaultHandoffWindow paces the waiter queue in Redis (see
	// [Options].HandoffWindow): a dead waiter holds it up for at most
	// five of it.
	DefaultHandoffWindow = 50 * time.Millisecond
	// DefaultLocalHandoffs is how many times in a row a release hands its
	// lease straight to a waiter of the same instance before it yields to
	// the waiters of other instances.
	DefaultLocalHandoffs = 16
)

// Options configure a [Backend]. A nil *Options, like the zero value,
// means every default.
type Options struct {
	// Prefix starts every key and channel name. It must not contain '{'
	// or '}' (they would change the keys' hash tags). Two Backends see each
	// other only with the same prefix. Default: [DefaultPrefix] ("cgn:").
	Prefix string

	// InstanceID names this instance in the messages it publishes, so it
	// can ignore its own. Default: "bot-<pid>-<unix ms>-<9 random
	// characters>", the Node fleet's form (docs/WIRE.md).
	InstanceID string

	// LockDefaults are applied before the options of each Acquire.
	// Default: none (coord's defaults: TTL 10s, 3 retries 100ms apart).
	LockDefaults []coord.LockOption

	// SessionDefaults holds the session defaults (idle TTL, absolute
	// lifetime) of Create without [coord.WithIdleTTL] or
	// [coord.WithLifetime]. Default: idle TTL [coord.DefaultSessionTTL],
	// no lifetime.
	SessionDefaults coord.SessionOptions

	// QueueSize is the length of a subscription's queue when
	// [coord.WithQueueSize] does not set one, for invalidations and
	// events alike. Default: [coord.DefaultInvalidationQueueSize] for
	// invalidations, [coord.DefaultQueueSize] for events.
	QueueSize int

	// QueueBytes bounds the bytes of messages queued for this Backend's
	// subscriptions, all together (key, metadata or payload, and a small
	// per-message overhead). A message that would pass it is dropped as on
	// a full queue: an invalidation subscriber gets a PurgeAll
	// [coord.ReasonOverflow], an event is counted in Stats().Dropped.
	// Negative means no bound. Default: [coord.DefaultQueueBytes] (64 MiB).
	QueueBytes int64

	// MaxPayload limits an event payload, invalidation metadata, or a
	// session's encoded data, in bytes. Default: [driver.DefaultMaxPayload].
	MaxPayload int

	// HealthInterval is how often the subscriber connection is pinged.
	// Default: [DefaultHealthInterval].
	HealthInterval time.Duration

	// PingTimeout is how long a PING on the subscriber connection may go
	// unanswered: past it the connection is suspected down (silently
	// lost, or a server that stopped answering), invalidation subscribers
	// with [coord.NotifyGaps] get a [coord.GapStart], and the connection
	// is replaced. A silent outage is thus noticed within HealthInterval
	// + PingTimeout (2s by default). Default: [DefaultPingTimeout].
	PingTimeout time.Duration

	// DegradedLatency is the PING round trip above which Health reports
	// degraded. Default: [DefaultDegradedLatency].
	DegradedLatency time.Duration

	// LockReplicas, when positive, makes every lease the Backend grants
	// wait (WAIT) until that many replicas have it and its fence, on the
	// connection that took it (in a Cluster, the master of its slot):
	// Locker.Acquire, RWLocker.RLock and Lock, Semaphores.Acquire and
	// Elector.Campaign. When fewer acknowledge within LockReplicaTimeout,
	// the lease is released (best effort) and the call fails with an error
	// wrapping [coord.ErrUnavailable] that names the resource and the
	// counts; a waiting call (WithWait, WithRetry) ends at that refusal
	// rather than retrying into it. No lease is handed straight to a
	// waiter of the same instance meanwhile (exclusive leases and permits
	// alike): a handoff is granted inside Release, where no WAIT covers
	// it, so the waiter takes the freed lease with a try of its own.
	// [Jobs.Complete] also WAITs for its record (see [Jobs]). It narrows,
	// but does not close, the window in which a failover loses a lease
	// (Redis replication is asynchronous); each acquire pays a round trip
	// to the replicas. Default: 0 (off).
	LockReplicas int

	// LockReplicaTimeout bounds the WAIT of LockReplicas.
	// Default: [DefaultLockReplicaTimeout].
	LockReplicaTimeout time.Duration

	// HandoffWindow paces the waiter queue in Redis (see [Locker]): a
	// waiting instance renews its place at least this often, and its place
	// lapses five windows after its last renewal, which bounds how long a
	// dead waiter holds the queue up; a lease released to the queue stays
	// reserved for the oldest waiter until its place lapses. Negative
	// disables the queue (every release wakes every waiting instance, and
	// the first try wins). Default: [DefaultHandoffWindow].
	HandoffWindow time.Duration

	// LocalHandoffs bounds the local handoff: a Release with a waiter for
	// the same resource on this Backend hands the lease straight to it in
	// the release's own round trip (a new token and fence, the waiter's
	// TTL), so a handoff costs one round trip instead of two. After that
	// many handoffs in a row, a release yields: when another instance is
	// queued for the lease, it reserves the lease for the oldest one
	// instead, and this instance's waiters queue again at the back.
	// Negative disables the local handoff (every release deletes the
	// lease and serves the queue). Default: [DefaultLocalHandoffs].
	LocalHandoffs int

	// OnStateChange, when set, is called with the new state each time the
	// state of the command connection or the subscriber connection
	// changes (see [Backend.State] and [Backend.SubscriberState]). It is
	// called synchronously and must not block. Default: nil.
	OnStateChange func(StateChange)

	// Logger receives the backend's own records: the command and
	// subscriber connections lost and restored, renewals that failed,
	// leases lost, orphaned leases released, handler panics (the list,
	// with levels and attributes, is in docs/LOGGING.md). Tokens and
	// session IDs are never logged. Default: nil, which discards them;
	// [github.com/cgn-bot/coord/backend.Open] passes its Config.Logger
	// (or [slog.Default]) here when this is nil.
	Logger *slog.Logger
}

// StateChange reports a change of connection state.
type StateChange struct {
	// Subscriber is true for the subscriber connection, false for the
	// command connection.
	Subscriber bool
	// From and To are the old and new states.
	From, To coord.ConnState
}

// resolved is Options with the defaults filled in.
type resolved struct {
	Options
}

func resolve(o *Options) (resolved, error) {
	var r resolved
	if o != nil {
		r.Options = *o
	}
	if r.Prefix == "" {
		r.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(r.Prefix, "{}") {
		return r, fmt.Errorf("%w: coord/redis: prefix %q contains '{' or '}'", coord.ErrInvalid, r.Prefix)
	}
	if err := driver.ValidateName("prefix", r.Prefix); err != nil {
		return r, err
	}
	if r.InstanceID == "" {
		r.InstanceID = newInstanceID()
	} else if err := driver.ValidateName("instance ID", r.InstanceID); err != nil {
		return r, err
	}
	if _, err := driver.NewLockOptions(r.LockDefaults...); err != nil {
		return r, err
	}
	if _, err := driver.NewSessionOptions(r.SessionDefaults); err != nil {
		return r, err
	}
	if r.QueueSize < 0 {
		return r, fmt.Errorf("%w: coord/redis: queue size %d is negative", coord.ErrInvalid, r.QueueSize)
	}
	if r.MaxPayload <= 0 {
		r.MaxPayload = driver.DefaultMaxPayload
	}
	if r.HealthInterval <= 0 {
		r.HealthInterval = DefaultHealthInterval
	}
	if r.PingTimeout <= 0 {
		r.PingTimeout = DefaultPingTimeout
	}
	if r.QueueBytes == 0 {
		r.QueueBytes = coord.DefaultQueueBytes
	}
	if r.LockReplicas < 0 {
		return r, fmt.Errorf("%w: coord/redis: lock replicas %d is negative", coord.ErrInvalid, r.LockReplicas)
	}
	if r.LockReplicaTimeout <= 0 {
		r.LockReplicaTimeout = DefaultLockReplicaTimeout
	}
	if r.HandoffWindow == 0 {
		r.HandoffWindow = DefaultHandoffWindow
	}
	if r.LocalHandoffs == 0 {
		r.LocalHandoffs = DefaultLocalHandoffs
	}
	if r.DegradedLatency <= 0 {
		r.DegradedLatency = DefaultDegradedLatency
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// newInstanceID returns "bot-<pid>-<unix ms>-<9 random base-36 chars>".
func newInstanceID() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [9]byte
	for i := range b {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		b[i] = alphabet[n.Int64()]
	}
	return fmt.Sprintf("bot-%d-%d-%s", os.Getpid(), time.Now().UnixMilli(), b[:])
}
