package coord

import (
	"context"
	"encoding/json"
	"strconv"
	"time"
)

// Backend is one instance's view of a coordination backend. Several
// Backends on the same store (several processes on one Redis, several
// nodes on one memory Hub) see each other's locks, sessions, invalidations
// and events. A Backend is safe for concurrent use by multiple goroutines.
type Backend interface {
	// Locker returns the leases of this instance.
	Locker() Locker
	// Sessions returns the shared session store.
	Sessions() SessionStore
	// Invalidator returns cross-instance cache invalidation.
	Invalidator() Invalidator
	// Events returns the event bus between instances.
	Events() EventBus
	// RWLocker returns the read-write leases of this instance.
	RWLocker() RWLocker
	// Semaphores returns the permits of this instance.
	Semaphores() Semaphores
	// Elector returns the elections this instance takes part in.
	Elector() Elector
	// Jobs returns the record that lets a job run once per period
	// across the instances.
	Jobs() Jobs
	// RateLimiter returns the rate limits shared by every instance.
	RateLimiter() RateLimiter
	// Streams returns the durable streams.
	Streams() Streams
	// InstanceID returns this instance's ID, carried in every message it
	// publishes so that it can ignore its own.
	InstanceID() string
	// Health reports the backend's state. It never fails: a failure shows
	// as an unhealthy Health.
	Health(ctx context.Context) Health
	// Close releases the locks this instance holds, stops its subscriber
	// goroutines (waiting for running handlers) and closes what the
	// Backend opened itself, never a client it was given. Close is
	// idempotent; afterwards every method returns [ErrClosed].
	Close(ctx context.Context) error
}

// Locker hands out leases on named resources. A Locker is safe for
// concurrent use by multiple goroutines.
type Locker interface {
	// Acquire takes the lease on resource. It tries once and, while the
	// resource is held by someone else, waits for its release (woken by a
	// notification, not by polling alone) up to the retry budget of the
	// options or until ctx ends. See [WithTTL], [WithRetry], [WithWait]
	// and [WithAutoRenew].
	//
	// May return [ErrNotAcquired] (joined with ctx.Err() when ctx ended the
	// wait), [ErrInvalid], [ErrClosed] or [ErrUnavailable].
	Acquire(ctx context.Context, resource string, opts ...LockOption) (Lock, error)

	// Locked reports whether anyone holds resource now.
	Locked(ctx context.Context, resource string) (bool, error)

	// ForceRelease deletes the lease on resource whoever holds it and
	// wakes its waiters. It reports whether there was a lease. It is an
	// administrative tool: the holder learns of it at its next Extend,
	// Release or renewal, and its next holder gets a higher fence.
	ForceRelease(ctx context.Context, resource string) (bool, error)

	// Held returns the leases this instance holds and believes are live.
	Held() []Lock
}

// Lock is one lease on a resource, from one call to [Locker.Acquire].
// A Lock is safe for concurrent use by multiple goroutines.
type Lock interface {
	// Resource returns the name the lease is on.
	Resource() string
	// Token returns the lease's secret token (at least 128 bits from
	// crypto/rand). It is what proves ownership: do not log it.
	Token() string
	// Fence returns the fencing token: strictly greater than every fence
	// handed out before for this resource, by any instance, ever. A
	// resource that checks fences rejects writes from a holder that lost
	// its lease without knowing it.
	Fence() int64
	// TTL returns the time left on the lease as the backend sees it.
	// May return [ErrNotHeld] or [ErrExpired].
	TTL(ctx context.Context) (time.Duration, error)
	// Extend sets the lease to end ttl from now, if it is still held.
	// May return [ErrNotHeld], [ErrExpired] or [ErrInvalid].
	Extend(ctx context.Context, ttl time.Duration) error
	// Release ends the lease and wakes a waiter. Releasing a lease already
	// released by this Lock returns nil. May return [ErrNotHeld] when
	// another holder has the resource now, or [ErrExpired] when the lease
	// ran out and nobody holds it. Release should be called with a context
	// that is not cancelled (context.WithoutCancel) so a cancelled request
	// still frees its lock. Whatever it returns, the lease is given up: it
	// is no longer renewed and ends at the latest at its TTL (Done closes,
	// Held no longer lists it), and a release that could not reach the
	// backend's server is retried in the background.
	Release(ctx context.Context) error
	// Done returns a channel closed when the lease ends: released, or
	// known lost (an Extend or renewal found it gone, or its local
	// deadline passed without a successful renewal).
	Done() <-chan struct{}
}

// SessionStore keeps sessions that every instance can read. Session
// tokens carry 256 bits from crypto/rand and are never stored in clear;
// a token this store did not issue is never adopted. A SessionStore is
// safe for concurrent use by multiple goroutines.
//
// Unless a method says otherwise it may return [ErrInvalid] (a malformed
// token, name or data), [ErrClosed] or [ErrUnavailable].
type SessionStore interface {
	// Create starts a session for userID with data (each value encoded
	// as JSON, at most 1 MiB in all by default; nil values are dropped) and returns it with its new token in ID.
	// See [WithIdleTTL] and [WithLifetime].
	Create(ctx context.Context, userID string, data map[string]any, opts ...SessionOption) (*Session, error)
	// Get returns the session with token id without touching it.
	// May return [ErrNotFound].
	Get(ctx context.Context, id string) (*Session, error)
	// Touch returns the session with token id after sliding its idle
	// expiry and setting LastAccessedAt to now (never past its absolute
	// deadline). May return [ErrNotFound].
	Touch(ctx context.Context, id string) (*Session, error)
	// Update merges data into the session's data in one atomic step: each
	// key is set, and a nil value deletes the key. Fields not named are
	// left as they are, even when another instance updates them at the
	// same time. Update does not change expiry. May return [ErrNotFound].
	Update(ctx context.Context, id string, data map[string]any) error
	// Delete ends the session with token id. Deleting a missing session is
	// not an error.
	Delete(ctx context.Context, id string) error
	// Exists reports whether the session with token id is live.
	Exists(ctx context.Context, id string) (bool, error)
	// Extend sets the session's idle expiry to ttl from now, capped at its
	// absolute deadline. May return [ErrNotFound].
	Extend(ctx context.Context, id string, ttl time.Duration) error
	// Rotate gives the session a new token (for example at login): the
	// returned session has a new ID and Handle and the same user, data,
	// creation time and deadlines; the old token is dead at once.
	// May return [ErrNotFound].
	Rotate(ctx context.Context, id string) (*Session, error)
	// ByUser returns the live sessions of userID, oldest first. Their ID
	// is empty: tokens are not stored; Handle names each one.
	ByUser(ctx context.Context, userID string) ([]*Session, error)
	// Revoke ends the session of userID named by handle (from ByUser).
	// A handle of another user's session, or of no session, gives
	// [ErrNotFound] and changes nothing.
	Revoke(ctx context.Context, userID, handle string) error
	// DeleteByUser ends every session of userID ("log out everywhere"),
	// including sessions created while it runs, and returns how many it
	// ended.
	DeleteByUser(ctx context.Context, userID string) (int, error)
	// Count returns the number of live sessions, without scanning keys.
	Count(ctx context.Context) (int64, error)
	// Stats returns counts over all live sessions.
	Stats(ctx context.Context) (SessionStats, error)
	// Cleanup removes what expired sessions left behind in the indexes
	// and returns how many expired sessions it accounted for. Expiry is
	// honoured without it; it only bounds memory.
	Cleanup(ctx context.Context) (int, error)
}

// Session is a snapshot of one session.
type Session struct {
	// ID is the session's secret token. It is set by Create, Rotate, Get
	// and Touch (which were given it) and empty in listings. Never log it.
	ID string
	// Handle names the session without being a secret: for listings,
	// logs and [SessionStore.Revoke]. It cannot be used as a token.
	Handle string
	// UserID is the user the session belongs to.
	UserID string
	// Data holds the session's fields, each as the JSON it was stored as.
	// Use [Session.Decode] to read one into a Go value.
	Data map[string]json.RawMessage
	// CreatedAt is when the session was created (kept across Rotate).
	CreatedAt time.Time
	// LastAccessedAt is when the session was last created, touched or
	// rotated.
	LastAccessedAt time.Time
	// ExpiresAt is when the session expires unless touched or extended.
	ExpiresAt time.Time
	// Deadline is the absolute end of the session, which no touch or
	// extend can pass; zero when it has none.
	Deadline time.Time
}

// Decode unmarshals the data field key into v. It returns an error
// wrapping [ErrNotFound] when the session has no such field.
func (s *Session) Decode(key string, v any) error {
	raw, ok := s.Data[key]
	if !ok {
		return &keyError{key: key}
	}
	return json.Unmarshal(raw, v)
}

type keyError struct{ key string }

func (e *keyError) Error() string { return "coord: session has no field " + quote(e.key) }
func (e *keyError) Unwrap() error { return ErrNotFound }

// SessionStats summarises the live sessions of a store.
type SessionStats struct {
	// Sessions is the number of live sessions.
	Sessions int64
	// Users is the number of users with at least one live session.
	Users int64
	// OldestCreatedAt is the creation time of the oldest live session;
	// zero when there is none.
	OldestCreatedAt time.Time
}

// Invalidator broadcasts cache invalidations to the other instances and
// delivers theirs to this instance's subscribers. Delivery is at most
// once; after any gap in delivery (a reconnect, a queue overflow) each
// subscriber receives a [PurgeAll] invalidation, so a near cache never
// keeps serving a value it may have missed an invalidation for. An
// Invalidator is safe for concurrent use by multiple goroutines.
type Invalidator interface {
	// Invalidate tells the other instances that key changed. meta is
	// carried as JSON (a [json.RawMessage] as is, anything else
	// marshalled; at most 1 MiB by default). May return [ErrInvalid],
	// [ErrClosed] or [ErrUnavailable].
	Invalidate(ctx context.Context, key string, meta any) error
	// InvalidatePattern tells the other instances that every key matching
	// glob (Redis glob rules, see [MatchGlob]) changed.
	InvalidatePattern(ctx context.Context, glob string, meta any) error
	// Subscribe calls fn for each invalidation from other instances (and
	// this one's with [IncludeOwn]); with [OnlyKey] only for those that
	// touch one key. fn runs on the subscription's own goroutine, one call
	// at a time, in the order one publisher sent them. The subscription
	// ends when Unsubscribe is called, ctx ends, or the backend closes.
	Subscribe(ctx context.Context, fn func(Invalidation), opts ...SubscribeOption) (Subscription, error)
	// Stats returns this instance's counters.
	Stats() InvalidatorStats
}

// InvalidationKind says what an [Invalidation] covers.
type InvalidationKind int

const (
	// KeyInvalidation covers one key.
	KeyInvalidation InvalidationKind = iota + 1
	// PatternInvalidation covers the keys matching a glob.
	PatternInvalidation
	// PurgeAll covers every key: delivery had a gap, so anything may have
	// changed.
	PurgeAll
	// GapStart says delivery may have stopped: the subscriber connection
	// is known or suspected to be down, so invalidations may be missed
	// from now on. Only subscriptions made with [NotifyGaps] receive it.
	// The gap ends with the PurgeAll whose Reason is [ReasonReconnect],
	// delivered once the subscription is confirmed live again; until then
	// a near cache should neither serve nor store values. Like PurgeAll,
	// it covers every key.
	GapStart
)

// Reasons of a PurgeAll (and of a GapStart).
const (
	// ReasonReconnect: the subscription is live again after a gap. It
	// ends the gap a GapStart announced.
	ReasonReconnect = "reconnect"
	// ReasonOverflow: the subscription's queue (its length or the
	// backend's byte budget) was full and an invalidation was dropped.
	ReasonOverflow = "overflow"
	// ReasonMalformed: an invalidation from another publisher could not
	// be accepted and was dropped. Backends send at most one such
	// PurgeAll per second; the malformed messages in between are still
	// counted and followed by one PurgeAll when the second ends.
	ReasonMalformed = "malformed"
)

// DefaultQueueBytes is how many bytes of messages the subscription queues
// of one backend instance may hold together (64 MiB); past it a message
// is dropped as on a full queue: an invalidation subscriber then gets a
// PurgeAll [ReasonOverflow], an event is counted as dropped. Both
// backends have an option to change it.
const DefaultQueueBytes = 64 << 20

// NotifyGaps makes an invalidation subscription receive a [GapStart] as
// soon as the backend knows or suspects its delivery has stopped, ahead
// of invalidations still queued, as well as the PurgeAll that ends the
// gap. It is ignored by event subscriptions.
func NotifyGaps() SubscribeOption {
	return func(o *SubscribeOptions) { o.Gaps = true }
}

// String returns "key", "pattern" or "purge".
func (k InvalidationKind) String() string {
	switch k {
	case KeyInvalidation:
		return "key"
	case PatternInvalidation:
		return "pattern"
	case PurgeAll:
		return "purge"
	case GapStart:
		return "gap"
	}
	return "unknown"
}

// Invalidation is one invalidation delivered to a subscriber.
type Invalidation struct {
	// Kind says what the invalidation covers.
	Kind InvalidationKind
	// Key is the key (KeyInvalidation) or glob (PatternInvalidation);
	// empty for PurgeAll.
	Key string
	// Metadata is the JSON the publisher attached; may be empty.
	Metadata json.RawMessage
	// InstanceID is the publishing instance; empty for PurgeAll.
	InstanceID string
	// Timestamp is when it was published (millisecond resolution).
	Timestamp time.Time
	// Reason says why a PurgeAll or GapStart was sent (for example
	// [ReasonReconnect], [ReasonOverflow] or [ReasonMalformed]); empty
	// otherwise.
	Reason string
	// Trace is the trace context the publisher attached (see
	// [WithTrace]); nil when it attached none.
	Trace TraceCarrier
}

// Matches reports whether the invalidation covers key.
func (inv Invalidation) Matches(key string) bool {
	switch inv.Kind {
	case KeyInvalidation:
		return inv.Key == key
	case PatternInvalidation:
		return MatchGlob(inv.Key, key)
	case PurgeAll, GapStart:
		return true
	}
	return false
}

// InvalidatorStats are an Invalidator's counters since it started.
type InvalidatorStats struct {
	Sent      uint64 // invalidations published by this instance
	Received  uint64 // invalidations delivered to at least one subscriber
	Dropped   uint64 // deliveries lost to a full subscriber queue
	Purges    uint64 // PurgeAll signals delivered (reconnects and overflows)
	Malformed uint64 // messages that failed to decode and were dropped
	Panics    uint64 // handler panics recovered
}

// EventBus carries events between instances. Delivery is at most once,
// in publish order from one publisher. An EventBus is safe for concurrent
// use by multiple goroutines.
type EventBus interface {
	// Publish sends payload (encoded as for [Invalidator.Invalidate]'s
	// meta) on topic to the other instances. May return [ErrInvalid], [ErrClosed] or [ErrUnavailable].
	Publish(ctx context.Context, topic string, payload any) error
	// Subscribe calls fn for each event on topic from other instances
	// (and this one's with [IncludeOwn]). fn runs on the subscription's
	// own goroutine, one call at a time; a slow fn delays no other
	// subscriber and a panic in fn is recovered and counted. The
	// subscription ends when Unsubscribe is called, ctx ends, or the
	// backend closes.
	Subscribe(ctx context.Context, topic string, fn func(Event), opts ...SubscribeOption) (Subscription, error)
	// Stats returns this instance's counters.
	Stats() EventStats
}

// Event is one event delivered to a subscriber.
type Event struct {
	// Topic is the event's name (the message's "event" field; see
	// docs/WIRE.md).
	Topic string
	// Payload is the JSON the publisher sent.
	Payload json.RawMessage
	// InstanceID is the publishing instance.
	InstanceID string
	// Timestamp is when it was published (millisecond resolution).
	Timestamp time.Time
	// Trace is the trace context the publisher attached (see
	// [WithTrace]); nil when it attached none.
	Trace TraceCarrier
}

// EventStats are an EventBus's counters since it started.
type EventStats struct {
	Published uint64 // events published by this instance
	Received  uint64 // events delivered to at least one subscriber
	Dropped   uint64 // deliveries lost to a full subscriber queue
	Malformed uint64 // messages that failed to decode and were dropped
	Panics    uint64 // handler panics recovered
}

// Subscription is a live subscription.
type Subscription interface {
	// Unsubscribe ends the subscription. After it returns, the handler is
	// not called again (a call already running may finish). It is
	// idempotent and safe to call from within the handler.
	Unsubscribe()
	// Done returns a channel closed when the subscription has ended and
	// its handler is no longer running.
	Done() <-chan struct{}
}

// HealthStatus is the overall state in a [Health].
type HealthStatus string

// Health statuses.
const (
	Healthy   HealthStatus = "healthy"
	Degraded  HealthStatus = "degraded"
	Unhealthy HealthStatus = "unhealthy"
)

// ConnState is the state of a backend's connection.
type ConnState string

// Connection states.
const (
	Connected    ConnState = "connected"
	Reconnecting ConnState = "reconnecting"
	Disconnected ConnState = "disconnected"
)

// Health is a backend's state at one moment.
type Health struct {
	// Status is the overall verdict.
	Status HealthStatus
	// Backend names the kind of backend ("memory", "redis").
	Backend string
	// Connection is the state of the command connection.
	Connection ConnState
	// Subscriber is the state of the subscriber connection.
	Subscriber ConnState
	// Latency is the round trip of a PING (zero for memory).
	Latency time.Duration
	// MessagesReceived counts invalidations and events received.
	MessagesReceived uint64
	// Sessions is the number of live sessions, or -1 when unknown.
	Sessions int64
	// Error describes the failure behind a status other than Healthy.
	Error string
}

// Aser is implemented by backends that expose their native types.
// As reports whether it could set target (a pointer to a native type).
type Aser interface {
	As(target any) bool
}

// As fills target from v or, following the Unwrap methods of decorators,
// from what v wraps, and reports whether one of them could.
func As(v, target any) bool {
	for v != nil {
		if a, ok := v.(Aser); ok && a.As(target) {
			return true
		}
		switch u := v.(type) {
		case interface{ Unwrap() Backend }:
			v = u.Unwrap()
		case interface{ Unwrap() Locker }:
			v = u.Unwrap()
		case interface{ Unwrap() SessionStore }:
			v = u.Unwrap()
		case interface{ Unwrap() Invalidator }:
			v = u.Unwrap()
		case interface{ Unwrap() EventBus }:
			v = u.Unwrap()
		default:
			return false
		}
	}
	return false
}

// TraceCarrier is trace context carried opaquely from a publisher to
// the receivers of its invalidations and events: text keys and values
// such as W3C's "traceparent" and "tracestate", as a propagator injects
// them. coord neither reads nor makes it; the tracing middleware does.
// A carrier the wire cannot take (see docs/WIRE.md: at most
// [MaxTraceFields] fields, lowercase keys, printable ASCII values,
// [MaxTraceBytes] in all) is not sent; the message still is.
type TraceCarrier map[string]string

// Bounds of a [TraceCarrier] on the wire.
const (
	// MaxTraceFields is the most fields a carrier may have.
	MaxTraceFields = 8
	// MaxTraceBytes bounds the sum of the lengths of a carrier's keys
	// and values.
	MaxTraceBytes = 1024
)

type traceKey struct{}

// WithTrace returns a copy of ctx that carries c: an invalidation or
// event published with it carries c to its receivers, who find it in
// [Invalidation.Trace] or [Event.Trace].
func WithTrace(ctx context.Context, c TraceCarrier) context.Context {
	return context.WithValue(ctx, traceKey{}, c)
}

// TraceFrom returns the carrier [WithTrace] put in ctx, or nil.
func TraceFrom(ctx context.Context) TraceCarrier {
	c, _ := ctx.Value(traceKey{}).(TraceCarrier)
	return c
}

func quote(s string) string { return strconv.Quote(s) }
