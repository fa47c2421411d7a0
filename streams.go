package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Streams keeps ordered, durable logs of entries. Unlike [EventBus], an
// entry is kept until trimmed and reaches every consumer group at least
// once; within a group each entry is handled by one consumer at a time.
// A Streams is safe for concurrent use by multiple goroutines.
//
// The guarantees, each checked by the conformance suite:
//   - delivery is at least once per group, so handlers must be idempotent;
//   - within a group an entry is handled by one consumer at a time: an
//     entry whose handler is still running is never handed to another
//     consumer (the backend keeps it alive while the handler runs);
//   - a handler error or panic leaves the entry pending; it is delivered
//     again, to any consumer of the group, once it has been pending for
//     [ClaimAfter], with its delivery count in [StreamEntry.Deliveries];
//   - an entry delivered [MaxDeliveries] times and still failing is
//     dead-lettered atomically: copied with its ID, payload and count to
//     the stream's dead letters ([Streams.DeadLetters]) and acknowledged
//     at the source;
//   - a consumer started again under its stable [ConsumerName] gets its
//     own pending entries back at once;
//   - a consumer is never deleted while it has pending entries;
//   - with a concurrency of 1, first deliveries arrive in ID order;
//   - groups are independent; a new group starts at the first or the
//     latest entry (see [StartAt]).
//
// A backend without streams returns one whose methods fail with
// [ErrUnsupported].
type Streams interface {
	// Append stores payload (encoded as for [EventBus.Publish]) at the end
	// of stream and returns the entry's ID. The trace context of ctx (see
	// [WithTrace]) travels with the entry.
	Append(ctx context.Context, stream string, payload any) (string, error)
	// Consume delivers stream's entries to fn as a member of group,
	// creating the group if it does not exist (at the entry [StartAt]
	// says). An entry fn returns nil for is acknowledged; an error or a
	// panic leaves it pending, to be delivered again. fn's context ends
	// when the subscription does. The subscription ends when Unsubscribe
	// is called, ctx ends, or the backend closes; its Done closes once no
	// handler runs.
	Consume(ctx context.Context, stream, group string, fn func(context.Context, StreamEntry) error, opts ...ConsumeOption) (Subscription, error)
	// Range returns up to count entries of stream from the ID from
	// (inclusive; "" or "-" for the first), without a group.
	Range(ctx context.Context, stream, from string, count int) ([]StreamEntry, error)
	// Info reports the state of stream and its groups. A stream never
	// appended to reports zero.
	Info(ctx context.Context, stream string) (StreamInfo, error)
	// DeadLetters returns up to count of stream's dead-lettered entries,
	// oldest first: each with its original ID, payload, and the number of
	// deliveries it had in [StreamEntry.Deliveries].
	DeadLetters(ctx context.Context, stream string, count int) ([]StreamEntry, error)
	// Trim drops entries of stream as r says and returns how many it
	// dropped. Entries a group has not acknowledged are dropped too
	// (and counted in [StreamInfo.TrimmedWhilePending] when a consumer
	// finds them gone) unless r.Safe is set.
	Trim(ctx context.Context, stream string, r Retention) (int64, error)
}

// StreamEntry is one entry of a stream, as delivered or replayed.
type StreamEntry struct {
	// Stream is the stream's name.
	Stream string
	// ID is the entry's ID, "<ms>-<seq>", increasing along the stream.
	ID string
	// Payload is the JSON the appender stored.
	Payload json.RawMessage
	// InstanceID is the appending instance.
	InstanceID string
	// Timestamp is when it was appended (millisecond resolution).
	Timestamp time.Time
	// Deliveries counts the deliveries of the entry to its group, this one
	// included (1 on the first); zero in a Range; in a dead letter, the
	// deliveries it had.
	Deliveries int
	// Trace is the trace context the appender attached (see [WithTrace]).
	Trace TraceCarrier
}

// StreamInfo is the state of a stream at one moment.
type StreamInfo struct {
	// Length is the number of entries kept.
	Length int64
	// FirstID and LastID are the IDs of the first and last entries kept
	// ("" when none).
	FirstID, LastID string
	// Groups are the stream's consumer groups, by name.
	Groups []StreamGroupInfo
	// DeadLetters is the number of dead-lettered entries kept.
	DeadLetters int64
	// TrimmedWhilePending counts the entries found trimmed while a group
	// still had them pending, over the stream's life.
	TrimmedWhilePending int64
}

// StreamGroupInfo is the state of one consumer group.
type StreamGroupInfo struct {
	// Name is the group's name.
	Name string
	// Consumers is the number of consumers the group knows.
	Consumers int
	// Pending is the number of entries delivered and not acknowledged.
	Pending int64
	// Lag is the number of entries kept that the group has not been
	// delivered yet.
	Lag int64
	// LastDeliveredID is the ID of the last entry delivered to the group.
	LastDeliveredID string
	// OldestPending is how long the oldest pending entry has waited since
	// its last delivery (zero when none is pending).
	OldestPending time.Duration
}

// Retention says which entries [Streams.Trim] drops. Zero fields impose
// nothing.
type Retention struct {
	// MaxLen keeps at most this many entries, the latest.
	MaxLen int64
	// MaxAge drops entries older than this, by the backend's clock.
	MaxAge time.Duration
	// Safe never drops an entry a live group has not acknowledged: one
	// pending, or not delivered yet. A group is live when one of its
	// consumers was active within GroupTTL.
	Safe bool
	// GroupTTL is how long a group with no active consumer still pins a
	// safe trim. Default: [DefaultGroupTTL].
	GroupTTL time.Duration
}

// Stream defaults.
const (
	// DefaultClaimAfter is how long an entry may sit pending, its handler
	// not running, before another consumer of its group takes it.
	DefaultClaimAfter = 30 * time.Second
	// DefaultMaxDeliveries is how many deliveries an entry gets before it
	// is dead-lettered.
	DefaultMaxDeliveries = 10
	// DefaultGroupTTL is how long a group with no active consumer still
	// pins a safe trim.
	DefaultGroupTTL = 24 * time.Hour
	// MaxStreamCount bounds the count of one Range or DeadLetters.
	MaxStreamCount = 100000
	// MaxConcurrency bounds [ConsumeConcurrency].
	MaxConcurrency = 1024
)

// StreamStart says where a group created by [Streams.Consume] starts.
type StreamStart int

const (
	// FromFirst starts a new group at the first entry kept.
	FromFirst StreamStart = iota
	// FromLatest starts a new group after the last entry: it gets only
	// the entries appended from then on.
	FromLatest
)

// ConsumeOptions are the resolved options of one [Streams.Consume].
// Backends resolve them with [NewConsumeOptions].
type ConsumeOptions struct {
	// Start is where the group starts if Consume creates it.
	// Default: [FromFirst].
	Start StreamStart
	// Concurrency is how many handlers may run at once. With 1, first
	// deliveries arrive in ID order. Default: 1.
	Concurrency int
	// ClaimAfter is how long an entry may sit pending, its handler not
	// running, before another consumer takes it. Default:
	// [DefaultClaimAfter].
	ClaimAfter time.Duration
	// MaxDeliveries is how many deliveries an entry gets before it is
	// dead-lettered. Default: [DefaultMaxDeliveries].
	MaxDeliveries int
	// Consumer is the consumer's name in its group, which should be
	// stable across restarts of the same instance. Default: the
	// instance ID.
	Consumer string
}

// ConsumeOption sets an option of [Streams.Consume].
type ConsumeOption func(*ConsumeOptions)

// StartAt sets where the group starts if Consume creates it.
func StartAt(s StreamStart) ConsumeOption {
	return func(o *ConsumeOptions) { o.Start = s }
}

// ConsumeConcurrency sets how many handlers may run at once (1 to
// [MaxConcurrency]).
func ConsumeConcurrency(n int) ConsumeOption {
	return func(o *ConsumeOptions) { o.Concurrency = n }
}

// ClaimAfter sets how long an entry may sit pending, its handler not
// running, before another consumer of the group takes it (at least 1ms).
func ClaimAfter(d time.Duration) ConsumeOption {
	return func(o *ConsumeOptions) { o.ClaimAfter = d }
}

// MaxDeliveries sets how many deliveries an entry gets before it is
// dead-lettered (at least 1).
func MaxDeliveries(n int) ConsumeOption {
	return func(o *ConsumeOptions) { o.MaxDeliveries = n }
}

// ConsumerName sets the consumer's name in its group. Give each instance
// a name that stays the same across its restarts: a restarted consumer
// then gets its own pending entries back at once, and groups do not pile
// up consumers.
func ConsumerName(name string) ConsumeOption {
	return func(o *ConsumeOptions) { o.Consumer = name }
}

// NewConsumeOptions applies opts over the defaults and checks the result;
// an option out of range gives an error wrapping [ErrInvalid]. The
// consumer name, when not set, stays empty for the backend to fill in.
func NewConsumeOptions(opts ...ConsumeOption) (ConsumeOptions, error) {
	o := ConsumeOptions{Concurrency: 1, ClaimAfter: DefaultClaimAfter, MaxDeliveries: DefaultMaxDeliveries}
	for _, f := range opts {
		if f == nil {
			return o, fmt.Errorf("%w: nil ConsumeOption", ErrInvalid)
		}
		f(&o)
	}
	switch {
	case o.Start != FromFirst && o.Start != FromLatest:
		return o, fmt.Errorf("%w: StartAt(%d) is neither FromFirst nor FromLatest", ErrInvalid, o.Start)
	case o.Concurrency < 1 || o.Concurrency > MaxConcurrency:
		return o, fmt.Errorf("%w: concurrency %d is outside 1..%d", ErrInvalid, o.Concurrency, MaxConcurrency)
	case o.ClaimAfter < time.Millisecond:
		return o, fmt.Errorf("%w: ClaimAfter %v is under 1ms", ErrInvalid, o.ClaimAfter)
	case o.MaxDeliveries < 1:
		return o, fmt.Errorf("%w: MaxDeliveries %d is under 1", ErrInvalid, o.MaxDeliveries)
	}
	return o, nil
}

// CheckRetention reports, with an error wrapping [ErrInvalid], a
// Retention with a negative field, and returns r with its defaults.
func CheckRetention(r Retention) (Retention, error) {
	if r.MaxLen < 0 || r.MaxAge < 0 || r.GroupTTL < 0 {
		return r, fmt.Errorf("%w: negative retention %+v", ErrInvalid, r)
	}
	if r.GroupTTL == 0 {
		r.GroupTTL = DefaultGroupTTL
	}
	return r, nil
}
