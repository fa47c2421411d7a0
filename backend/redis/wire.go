package redis

import (
	"encoding/json"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/wire"
)

// The wire formats, and what is accepted or refused, are internal/wire's,
// shared with the memory backend (docs/WIRE.md):
//
//	invalidation: {"instanceId","cacheKey","metadata","timestamp"}
//	shard event:  {"instanceId","event","payload","timestamp"}
//
// The names below are what the rest of the package calls.

// nullPayload stands for "no metadata or payload": encodeMessage sends
// it as {}. It is only ever copied into a message, never handed out.
var nullPayload = json.RawMessage("null")

// encodePayload encodes metadata or a payload for the wire (see
// [wire.EncodeValue]): nil is {} without an allocation, and a value that
// receivers would refuse is [coord.ErrInvalid].
func encodePayload(v any, max int) (json.RawMessage, error) {
	return wire.EncodeValue(v, max)
}

// The fields of the wire formats as they follow one another in a
// message.
const (
	fieldCacheKey = wire.FieldCacheKey
	fieldMetadata = wire.FieldMetadata
	fieldEvent    = wire.FieldEvent
	fieldPayload  = wire.FieldPayload
)

// envelopeHead returns `{"instanceId":"<id>"`, how every message of an
// instance starts.
func envelopeHead(instanceID string) []byte { return wire.Head(instanceID) }

// encodeMessage returns an invalidation or a shard event (see
// [wire.Encode]); an empty or null raw goes as {}.
func encodeMessage(head []byte, nameField, name, rawField string, raw json.RawMessage, ts time.Time) []byte {
	return wire.Encode(head, nameField, name, rawField, raw, ts)
}

// encodeInvalidation returns the wire message of an invalidation.
func encodeInvalidation(instanceID, key string, meta json.RawMessage, ts time.Time) []byte {
	return wire.EncodeInvalidation(instanceID, key, meta, ts)
}

// decodeInvalidation decodes a message from an invalidation channel
// (pattern: the pattern channel). The result owns its memory. The error
// wraps [wire.ErrMalformed].
func decodeInvalidation(payload string, pattern bool) (coord.Invalidation, error) {
	return wire.DecodeInvalidation(payload, pattern)
}

// Channels returns the names of the pub/sub channels shared with the Node
// fleet, with this Backend's prefix: key invalidations, pattern
// invalidations and shard events (see docs/WIRE.md). Metrics label
// received messages with them.
func (b *Backend) Channels() (invalidate, pattern, event string) {
	return b.keys.chInvalidate, b.keys.chPattern, b.keys.chEvent
}

// Channels returns its Backend's channel names (see [Backend.Channels]).
func (i *Invalidator) Channels() (invalidate, pattern, event string) { return i.b.Channels() }

// Channels returns its Backend's channel names (see [Backend.Channels]).
func (e *Events) Channels() (invalidate, pattern, event string) { return e.b.Channels() }
