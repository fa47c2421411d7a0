package redis

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	if plainJSONString(s) {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

// plainJSONString reports whether s is valid UTF-8 that needs no escape
// inside a JSON string.
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.ValidString(s)
}

// fastEnvelope parses a message laid out exactly as coord and the Node
// design write it: {"instanceId":"<id>","<k1>":"<v1>","<k2>":<raw JSON>,
// "timestamp":<digits>}, with strings that need no unescaping. ok is
// false for anything else, which the caller then parses with
// encoding/json (same result, slower).
func fastEnvelope(msg, k1, k2 string) (id, v1 string, raw []byte, ts int64, ok bool) {
	rest, ok := strings.CutPrefix(msg, `{"instanceId":"`)
	if !ok {
		return
	}
	id, rest, ok = cutPlain(rest)
	if !ok {
		return
	}
	if rest, ok = strings.CutPrefix(rest, `,"`+k1+`":"`); !ok {
		return
	}
	if v1, rest, ok = cutPlain(rest); !ok {
		return
	}
	if rest, ok = strings.CutPrefix(rest, `,"`+k2+`":`); !ok {
		return
	}
	i := strings.LastIndex(rest, `,"timestamp":`)
	if i < 0 || !strings.HasSuffix(rest, "}") {
		return "", "", nil, 0, false
	}
	digits := rest[i+len(`,"timestamp":`) : len(rest)-1]
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || digits == "" || digits[0] == '+' || (len(digits) > 1 && digits[0] == '0') {
		return "", "", nil, 0, false
	}
	raw = []byte(rest[:i])
	if len(raw) == 0 || isSpace(raw[0]) || isSpace(raw[len(raw)-1]) || !validJSON(raw) {
		return "", "", nil, 0, false
	}
	return id, v1, raw, n, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// cutPlain reads a JSON string body up to its closing quote; ok is false
// when it holds an escape, a control byte or invalid UTF-8.
func cutPlain(s string) (body, rest string, ok bool) {
	i := strings.IndexByte(s, '"')
	if i < 0 {
		return "", "", false
	}
	body = s[:i]
	if !plainJSONString(body) {
		return "", "", false
	}
	return body, s[i+1:], true
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
	if id, key, meta, ts, ok := fastEnvelope(payload, "cacheKey", "metadata"); ok && id != "" {
		inv := coord.Invalidation{Kind: coord.KeyInvalidation, Key: key, InstanceID: id, Timestamp: time.UnixMilli(ts), Metadata: meta}
		if pattern {
			inv.Kind = coord.PatternInvalidation
			if coord.ValidateGlob(key) != nil {
				return coord.Invalidation{}, errMalformed
			}
		} else if coord.ValidateName("key", key) != nil {
			return coord.Invalidation{}, errMalformed
		}
		return inv, nil
	}
	return decodeInvalidationSlow(payload, pattern)
}

// decodeInvalidationSlow is decodeInvalidation with encoding/json.
func decodeInvalidationSlow(payload string, pattern bool) (coord.Invalidation, error) {
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
	if id, topic, raw, ts, ok := fastEnvelope(payload, "event", "payload"); ok && id != "" {
		if coord.ValidateName("topic", topic) != nil {
			return coord.Event{}, errMalformed
		}
		return coord.Event{Topic: topic, InstanceID: id, Timestamp: time.UnixMilli(ts), Payload: raw}, nil
	}
	return decodeEventSlow(payload)
}

// decodeEventSlow is decodeEvent with encoding/json.
func decodeEventSlow(payload string) (coord.Event, error) {
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
