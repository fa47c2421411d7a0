package redis

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/cgn-bot/coord"
)

// The wire formats are the Node design's (DistributedCache):
//
//	invalidation: {"instanceId","cacheKey","metadata","timestamp"}
//	shard event:  {"instanceId","event","payload","timestamp"}
//
// with timestamp in Unix milliseconds; on the pattern channel cacheKey
// holds the glob.

var errMalformed = errors.New("malformed message")

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

// encodeInvalidation returns the wire message of an invalidation; meta is
// valid compact JSON.
func encodeInvalidation(instanceID, key string, meta json.RawMessage, ts time.Time) []byte {
	b := make([]byte, 0, 64+len(instanceID)+len(key)+len(meta))
	b = append(b, `{"instanceId":`...)
	b = appendJSONString(b, instanceID)
	b = append(b, `,"cacheKey":`...)
	b = appendJSONString(b, key)
	b = append(b, `,"metadata":`...)
	b = append(b, meta...)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, ts.UnixMilli(), 10)
	return append(b, '}')
}

// encodeEvent returns the wire message of a shard event; payload is valid
// compact JSON.
func encodeEvent(instanceID, topic string, payload json.RawMessage, ts time.Time) []byte {
	b := make([]byte, 0, 64+len(instanceID)+len(topic)+len(payload))
	b = append(b, `{"instanceId":`...)
	b = appendJSONString(b, instanceID)
	b = append(b, `,"event":`...)
	b = appendJSONString(b, topic)
	b = append(b, `,"payload":`...)
	b = append(b, payload...)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, ts.UnixMilli(), 10)
	return append(b, '}')
}

type wireInvalidation struct {
	InstanceID *string          `json:"instanceId"`
	CacheKey   *string          `json:"cacheKey"`
	Metadata   json.RawMessage  `json:"metadata"`
	Timestamp  *json.RawMessage `json:"timestamp"`
}

type wireEvent struct {
	InstanceID *string          `json:"instanceId"`
	Event      *string          `json:"event"`
	Payload    json.RawMessage  `json:"payload"`
	Timestamp  *json.RawMessage `json:"timestamp"`
}

// parseTimestamp reads a Unix-millisecond timestamp; absent is zero.
func parseTimestamp(raw *json.RawMessage) (time.Time, error) {
	if raw == nil || string(*raw) == "null" {
		return time.Time{}, nil
	}
	if n, err := strconv.ParseInt(string(*raw), 10, 64); err == nil {
		return time.UnixMilli(n), nil
	}
	f, err := strconv.ParseFloat(string(*raw), 64)
	if err != nil || f != f || f > 1e15 || f < -1e15 {
		return time.Time{}, errMalformed
	}
	return time.UnixMilli(int64(f)), nil
}

// decodeInvalidation parses and validates a message from an invalidation
// channel (pattern: the pattern channel).
func decodeInvalidation(payload string, pattern bool) (coord.Invalidation, error) {
	var w wireInvalidation
	if err := json.Unmarshal([]byte(payload), &w); err != nil {
		return coord.Invalidation{}, errMalformed
	}
	if w.InstanceID == nil || *w.InstanceID == "" || w.CacheKey == nil {
		return coord.Invalidation{}, errMalformed
	}
	inv := coord.Invalidation{Kind: coord.KeyInvalidation, Key: *w.CacheKey, InstanceID: *w.InstanceID}
	if pattern {
		inv.Kind = coord.PatternInvalidation
		if coord.ValidateGlob(inv.Key) != nil {
			return coord.Invalidation{}, errMalformed
		}
	} else if coord.ValidateName("key", inv.Key) != nil {
		return coord.Invalidation{}, errMalformed
	}
	ts, err := parseTimestamp(w.Timestamp)
	if err != nil {
		return coord.Invalidation{}, err
	}
	inv.Timestamp = ts
	if len(w.Metadata) > 0 {
		inv.Metadata = w.Metadata
	}
	return inv, nil
}

// decodeEvent parses and validates a message from the event channel.
func decodeEvent(payload string) (coord.Event, error) {
	var w wireEvent
	if err := json.Unmarshal([]byte(payload), &w); err != nil {
		return coord.Event{}, errMalformed
	}
	if w.InstanceID == nil || *w.InstanceID == "" || w.Event == nil || coord.ValidateName("topic", *w.Event) != nil {
		return coord.Event{}, errMalformed
	}
	ts, err := parseTimestamp(w.Timestamp)
	if err != nil {
		return coord.Event{}, err
	}
	ev := coord.Event{Topic: *w.Event, InstanceID: *w.InstanceID, Timestamp: ts, Payload: w.Payload}
	if len(ev.Payload) == 0 {
		ev.Payload = json.RawMessage("null")
	}
	return ev, nil
}
