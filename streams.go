package coord

import (
	"context"
	"encoding/json"
	"time"
)

// Streams keeps ordered, durable logs of entries. Unlike [EventBus], an
// entry is kept until trimmed and reaches every consumer group at least
// once; within a group each entry is handled by one consumer at a time.
// A Streams is safe for concurrent use by multiple goroutines.
//
// A backend without streams returns one whose methods fail with
// [ErrUnsupported].
type Streams interface {
	// Append stores payload (encoded as for [EventBus.Publish]) at the end
	// of stream and returns the entry's ID.
	Append(ctx context.Context, stream string, payload any) (string, error)
	// Consume delivers stream's entries to fn as a member of group. An
	// entry fn returns nil for is acknowledged; an error or a panic leaves
	// it pending, to be delivered again. The subscription ends when
	// Unsubscribe is called, ctx ends, or the backend closes.
	Consume(ctx context.Context, stream, group string, fn func(context.Context, StreamEntry) error, opts ...ConsumeOption) (Subscription, error)
	// Range returns up to count entries of stream from the ID from
	// (inclusive; "" or "-" for the first), without a group.
	Range(ctx context.Context, stream, from string, count int) ([]StreamEntry, error)
	// Info reports the state of stream and its groups.
	Info(ctx context.Context, stream string) (StreamInfo, error)
}

// StreamEntry is one entry of a stream, as delivered or replayed.
type StreamEntry struct {
	// Stream is the stream's name.
	Stream string
	// ID is the entry's ID, increasing along the stream.
	ID string
	// Payload is the JSON the appender stored.
	Payload json.RawMessage
	// InstanceID is the appending instance.
	InstanceID string
	// Timestamp is when it was appended (millisecond resolution).
	Timestamp time.Time
	// Deliveries counts the deliveries of the entry to its group, this one
	// included (1 on the first); zero in a Range.
	Deliveries int
	// Trace is the trace context the appender attached (see [WithTrace]).
	Trace TraceCarrier
}

// StreamInfo is the state of a stream at one moment.
type StreamInfo struct {
	// Length is the number of entries kept.
	Length int64
}

// ConsumeOptions are the resolved options of one [Streams.Consume].
type ConsumeOptions struct{}

// ConsumeOption sets an option of [Streams.Consume].
type ConsumeOption func(*ConsumeOptions)
