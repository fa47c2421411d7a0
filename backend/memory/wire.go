package memory

import (
	"encoding/json"
	"fmt"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/wire"
)

// Wire channel names accepted by [Hub.PublishRaw].
const (
	ChannelInvalidate = "invalidate" // key invalidations
	ChannelPattern    = "pattern"    // pattern invalidations
	ChannelEvent      = "event"      // events
)

// PublishRaw is a fault hook for tests: it hands payload to every
// connected node as if another program had published it on a wire
// channel of the Redis backend, in the Node fleet's JSON formats:
// {"instanceId","cacheKey","metadata","timestamp"} on [ChannelInvalidate]
// and [ChannelPattern], {"instanceId","event","payload","timestamp"} on
// [ChannelEvent]. Each node decodes it as its subscriber would, with the
// Redis backend's codec and rules (docs/WIRE.md): a refused message is
// counted in that node's Stats().Malformed and dropped; an accepted one is delivered like any other, and not to the
// node whose instance ID it carries (unless its subscription includes
// its own). It returns an error wrapping [coord.ErrInvalid] only for an
// unknown channel.
func (h *Hub) PublishRaw(channel string, payload []byte) error {
	var m *message
	var err error
	switch channel {
	case ChannelInvalidate:
		m, err = decodeInvalidation(coord.KeyInvalidation, payload)
	case ChannelPattern:
		m, err = decodeInvalidation(coord.PatternInvalidation, payload)
	case ChannelEvent:
		m, err = decodeEvent(payload)
	default:
		return fmt.Errorf("%w: unknown channel %q", coord.ErrInvalid, channel)
	}
	if err != nil {
		for _, o := range *h.nodes.Load() {
			if o.cut.Load() {
				continue
			}
			if channel == ChannelEvent {
				o.evStats.malformed.Add(1)
			} else {
				o.invStats.malformed.Add(1)
			}
		}
		return nil
	}
	h.fanOut(m)
	return nil
}

// decodeInvalidation decodes a foreign message from an invalidation
// channel with the codec the Redis backend uses (internal/wire), so both
// backends accept and refuse the same messages. The error wraps
// [coord.ErrInvalid].
func decodeInvalidation(kind coord.InvalidationKind, payload []byte) (*message, error) {
	inv, err := wire.DecodeInvalidation(string(payload), kind == coord.PatternInvalidation)
	if err != nil {
		return nil, err
	}
	return &message{kind: inv.Kind, key: inv.Key, payload: inv.Metadata, instance: inv.InstanceID, ts: inv.Timestamp, trace: inv.Trace}, nil
}

// decodeEvent decodes a foreign message from the event channel (see
// decodeInvalidation).
func decodeEvent(payload []byte) (*message, error) {
	ev, err := wire.DecodeEvent(string(payload))
	if err != nil {
		return nil, err
	}
	return &message{key: ev.Topic, payload: ev.Payload, instance: ev.InstanceID, ts: ev.Timestamp, trace: ev.Trace}, nil
}

// encodeMetadata encodes an invalidation's metadata as the Redis backend
// does and returns what its receivers deliver: nil for nil, null or {}
// (see [wire.EncodeValue] and [wire.Metadata]).
func encodeMetadata(meta any, max int) (json.RawMessage, error) {
	raw, err := wire.EncodeValue(meta, max)
	if err != nil {
		return nil, err
	}
	return wire.Metadata(raw), nil
}

// encodeEventPayload encodes an event's payload as the Redis backend does
// and returns what its receivers deliver: null for nil, null or {} (see
// [wire.EncodeValue] and [wire.Payload]).
func encodeEventPayload(payload any, max int) (json.RawMessage, error) {
	raw, err := wire.EncodeValue(payload, max)
	if err != nil {
		return nil, err
	}
	return wire.Payload(raw), nil
}
