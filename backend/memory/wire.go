package memory

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/cgn-bot/coord"
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
// [ChannelEvent]. Each node decodes it as its subscriber would: a
// malformed message is counted in that node's Stats().Malformed and
// dropped; a well-formed one is delivered like any other, and not to the
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

type wireMessage struct {
	InstanceID json.RawMessage `json:"instanceId"`
	CacheKey   json.RawMessage `json:"cacheKey"`
	Event      json.RawMessage `json:"event"`
	Metadata   json.RawMessage `json:"metadata"`
	Payload    json.RawMessage `json:"payload"`
	Timestamp  json.RawMessage `json:"timestamp"`
}

func decodeWire(payload []byte) (w wireMessage, instance string, ts time.Time, err error) {
	if !json.Valid(payload) {
		return w, "", ts, fmt.Errorf("%w: not JSON", coord.ErrInvalid)
	}
	if err := json.Unmarshal(payload, &w); err != nil {
		return w, "", ts, fmt.Errorf("%w: %v", coord.ErrInvalid, err)
	}
	if w.InstanceID != nil {
		if err := json.Unmarshal(w.InstanceID, &instance); err != nil {
			return w, "", ts, fmt.Errorf("%w: instanceId: %v", coord.ErrInvalid, err)
		}
	}
	if w.Timestamp != nil && string(w.Timestamp) != "null" {
		var ms float64
		if err := json.Unmarshal(w.Timestamp, &ms); err != nil || math.IsInf(ms, 0) || math.IsNaN(ms) {
			return w, "", ts, fmt.Errorf("%w: timestamp is not a number", coord.ErrInvalid)
		}
		ts = time.UnixMilli(int64(ms))
	}
	return w, instance, ts, nil
}

func compactJSON(raw json.RawMessage) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decodeInvalidation(kind coord.InvalidationKind, payload []byte) (*message, error) {
	w, instance, ts, err := decodeWire(payload)
	if err != nil {
		return nil, err
	}
	var key string
	if w.CacheKey == nil {
		return nil, fmt.Errorf("%w: no cacheKey", coord.ErrInvalid)
	}
	if err := json.Unmarshal(w.CacheKey, &key); err != nil {
		return nil, fmt.Errorf("%w: cacheKey: %v", coord.ErrInvalid, err)
	}
	if kind == coord.PatternInvalidation {
		err = coord.ValidateGlob(key)
	} else {
		err = coord.ValidateName("cacheKey", key)
	}
	if err != nil {
		return nil, err
	}
	m := &message{kind: kind, key: key, instance: instance, ts: ts}
	if w.Metadata != nil && string(w.Metadata) != "null" {
		if m.payload, err = compactJSON(w.Metadata); err != nil {
			return nil, fmt.Errorf("%w: metadata: %v", coord.ErrInvalid, err)
		}
	}
	return m, nil
}

func decodeEvent(payload []byte) (*message, error) {
	w, instance, ts, err := decodeWire(payload)
	if err != nil {
		return nil, err
	}
	var topic string
	if w.Event == nil {
		return nil, fmt.Errorf("%w: no event", coord.ErrInvalid)
	}
	if err := json.Unmarshal(w.Event, &topic); err != nil {
		return nil, fmt.Errorf("%w: event: %v", coord.ErrInvalid, err)
	}
	if err := coord.ValidateName("event", topic); err != nil {
		return nil, err
	}
	m := &message{key: topic, instance: instance, ts: ts, payload: json.RawMessage("null")}
	if w.Payload != nil {
		if m.payload, err = compactJSON(w.Payload); err != nil {
			return nil, fmt.Errorf("%w: payload: %v", coord.ErrInvalid, err)
		}
	}
	return m, nil
}
