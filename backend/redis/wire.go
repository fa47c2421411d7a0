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

// nullPayload is the encoding of a nil payload. It is only ever copied
// into a message, never handed out.
var nullPayload = json.RawMessage("null")

// encodePayload is [coord.EncodePayload] (same result, same errors),
// without an allocation for nil on the publish path.
func encodePayload(v any, max int) (json.RawMessage, error) {
	if v == nil && len(nullPayload) <= max {
		return nullPayload, nil
	}
	return coord.EncodePayload(v, max)
}

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
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' {
			return false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	return ascii || utf8.ValidString(s)
}

// The separators fastEnvelope looks for after the instance ID (sep1) and
// after the first value (sep2).
const (
	sepCacheKey = fieldCacheKey + `"`
	sepMetadata = fieldMetadata
	sepEvent    = fieldEvent + `"`
	sepPayload  = fieldPayload
)

// fastEnvelope parses a message laid out exactly as coord and the Node
// design write it: {"instanceId":"<id>","<k1>":"<v1>","<k2>":<raw JSON>,
// "timestamp":<digits>}, with strings that need no unescaping; sep1 is
// `,"<k1>":"` and sep2 `,"<k2>":`. ok is false for anything else, which
// the caller then parses with encoding/json (same result, slower). id and
// v1 are valid UTF-8 without control bytes below 0x20.
func fastEnvelope(msg, sep1, sep2 string) (id, v1 string, raw []byte, ts int64, ok bool) {
	rest, ok := strings.CutPrefix(msg, `{"instanceId":"`)
	if !ok {
		return
	}
	id, rest, ok = cutPlain(rest)
	if !ok {
		return
	}
	if rest, ok = strings.CutPrefix(rest, sep1); !ok {
		return
	}
	if v1, rest, ok = cutPlain(rest); !ok {
		return
	}
	if rest, ok = strings.CutPrefix(rest, sep2); !ok {
		return
	}
	// The end: `,"timestamp":`, an integer as JSON writes it (of at most
	// 18 digits: larger ones go to encoding/json), and the closing brace.
	end := len(rest) - 1
	if end < 0 || rest[end] != '}' {
		return "", "", nil, 0, false
	}
	k := end
	for k > 0 && rest[k-1] >= '0' && rest[k-1] <= '9' {
		k--
	}
	digits := rest[k:end]
	if digits == "" || len(digits) > 18 || (len(digits) > 1 && digits[0] == '0') {
		return "", "", nil, 0, false
	}
	neg := k > 0 && rest[k-1] == '-'
	if neg {
		k--
	}
	if !strings.HasSuffix(rest[:k], fieldTimestamp) {
		return "", "", nil, 0, false
	}
	for i := 0; i < len(digits); i++ {
		ts = ts*10 + int64(digits[i]-'0')
	}
	if neg {
		ts = -ts
	}
	raw = []byte(rest[:k-len(fieldTimestamp)])
	if len(raw) == 0 || isSpace(raw[0]) || isSpace(raw[len(raw)-1]) || string(raw) != "null" && !validJSON(raw) {
		return "", "", nil, 0, false
	}
	return id, v1, raw, ts, true
}

// plainName is [coord.ValidateName] for a string fastEnvelope returned,
// already known to be valid UTF-8 without bytes below 0x20.
func plainName(s string) bool {
	return s != "" && len(s) <= coord.MaxNameLen && strings.IndexByte(s, 0x7f) < 0
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// cutPlain reads a JSON string body up to its closing quote; ok is false
// when it holds an escape, a control byte or invalid UTF-8.
func cutPlain(s string) (body, rest string, ok bool) {
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			if body = s[:i]; !ascii && !utf8.ValidString(body) {
				return "", "", false
			}
			return body, s[i+1:], true
		case c < 0x20 || c == '\\':
			return "", "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", "", false
}

// The fields of the wire formats as they follow one another in a
// message.
const (
	fieldCacheKey  = `,"cacheKey":`
	fieldMetadata  = `,"metadata":`
	fieldEvent     = `,"event":`
	fieldPayload   = `,"payload":`
	fieldTimestamp = `,"timestamp":`
)

// envelopeHead returns `{"instanceId":"<id>"`, how every message of an
// instance starts.
func envelopeHead(instanceID string) []byte {
	return appendJSONString([]byte(`{"instanceId":`), instanceID)
}

// encodeMessage returns head, then nameField and name as a JSON string,
// then rawField and raw (valid compact JSON), then the timestamp: an
// invalidation or a shard event. It allocates once unless name needs
// escaping.
func encodeMessage(head []byte, nameField, name, rawField string, raw json.RawMessage, ts time.Time) []byte {
	const tail = len(fieldTimestamp) + 20 + 1 // the timestamp's digits and sign, the closing brace
	b := make([]byte, 0, len(head)+len(nameField)+len(name)+2+len(rawField)+len(raw)+tail)
	b = append(b, head...)
	b = append(b, nameField...)
	b = appendJSONString(b, name)
	b = append(b, rawField...)
	b = append(b, raw...)
	b = append(b, fieldTimestamp...)
	b = strconv.AppendInt(b, ts.UnixMilli(), 10)
	return append(b, '}')
}

// encodeInvalidation returns the wire message of an invalidation; meta is
// valid compact JSON.
func encodeInvalidation(instanceID, key string, meta json.RawMessage, ts time.Time) []byte {
	return encodeMessage(envelopeHead(instanceID), fieldCacheKey, key, fieldMetadata, meta, ts)
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
	if id, key, meta, ts, ok := fastEnvelope(payload, sepCacheKey, sepMetadata); ok && id != "" {
		inv := coord.Invalidation{Kind: coord.KeyInvalidation, Key: key, InstanceID: id, Timestamp: time.UnixMilli(ts)}
		if string(meta) != "null" { // no metadata is empty Metadata
			inv.Metadata = meta
		}
		if pattern {
			inv.Kind = coord.PatternInvalidation
			if coord.ValidateGlob(key) != nil {
				return coord.Invalidation{}, errMalformed
			}
		} else if !plainName(key) {
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
	if len(w.Metadata) > 0 && string(w.Metadata) != "null" {
		inv.Metadata = w.Metadata
	}
	return inv, nil
}

// decodeEvent parses and validates a message from the event channel.
func decodeEvent(payload string) (coord.Event, error) {
	if id, topic, raw, ts, ok := fastEnvelope(payload, sepEvent, sepPayload); ok && id != "" {
		if !plainName(topic) {
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
