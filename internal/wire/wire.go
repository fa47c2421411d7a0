// Package wire is coord's one codec for the pub/sub messages it shares
// with the Node fleet: invalidations of a key, invalidations of a
// pattern, and shard events. Both backends encode and decode through it,
// so a message one of them accepts the other accepts too, with the same
// fields. docs/WIRE.md describes the format and the rules; this package is
// their implementation.
//
// The formats, with timestamp in Unix milliseconds:
//
//	invalidation: {"instanceId":"…","cacheKey":"…","metadata":{…},"timestamp":…}
//	shard event:  {"instanceId":"…","event":"…","payload":{…},"timestamp":…}
//
// On the pattern channel cacheKey holds the glob.
//
// Either may end with an optional "trace" field, an object of strings
// holding the publisher's trace context ([coord.TraceCarrier]); see
// trace.go. A trace field that fails its rules is ignored, never the
// message.
//
// Decoding rules (docs/WIRE.md lists them with the reasons):
//   - the message is one JSON object; field names are matched exactly
//     (case-sensitive), a repeated field counts once with its last value,
//     and unknown fields are ignored;
//   - instanceId is a string that is a valid name ([driver.ValidateName]);
//     missing, null, empty or another type is refused;
//   - cacheKey is a valid key, or a valid glob on the pattern channel;
//     event is a valid name;
//   - metadata and payload are any JSON value nested at most [MaxDepth]
//     deep; missing, null and {} are empty (Metadata nil, Payload null);
//   - timestamp is a JSON number of milliseconds within ±[MaxTimestamp],
//     truncated toward zero; missing or null is the zero time; a string,
//     another type or a number out of range is refused.
//
// Encoding writes the fields in that order, compact, and sends {} for a
// nil (or null) metadata or payload: the Node fleet's handlers read
// metadata.reason and fail on null.
//
// A decoded message owns its memory: no field refers to the received
// buffer, so a queued message does not keep a large payload alive. The
// View decoders are the exception, for a caller that accounts for it:
// their names (key, topic, instance ID) may slice the message.
package wire

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

// MaxDepth is how deep arrays and objects may nest in metadata or a
// payload: 1 for {"a":1}, 2 for {"a":[1]}. Deeper values are refused on
// receipt and by [EncodeValue] on publish.
const MaxDepth = 128

// MaxTimestamp bounds the magnitude of a timestamp in milliseconds: the
// range of an ECMAScript Date (±100,000,000 days from 1970), so every
// value the Node fleet can write fits and time.UnixMilli stays exact.
const MaxTimestamp = 8_640_000_000_000_000

// ErrMalformed is wrapped by every decoding error. It wraps
// [coord.ErrInvalid].
var ErrMalformed = fmt.Errorf("%w: malformed wire message", coord.ErrInvalid)

// The decoding errors; each wraps ErrMalformed.
var (
	errNotObject = fmt.Errorf("%w: not a JSON object", ErrMalformed)
	errInstance  = fmt.Errorf("%w: instanceId missing, empty, not a string or not a valid name", ErrMalformed)
	errKey       = fmt.Errorf("%w: cacheKey missing, not a string or not a valid key", ErrMalformed)
	errGlob      = fmt.Errorf("%w: cacheKey missing, not a string or not a valid glob", ErrMalformed)
	errEvent     = fmt.Errorf("%w: event missing, not a string or not a valid name", ErrMalformed)
	errTimestamp = fmt.Errorf("%w: timestamp not a number of milliseconds within range", ErrMalformed)
	errDepth     = fmt.Errorf("%w: metadata or payload nested deeper than %d", ErrMalformed, MaxDepth)
)

// The fields of the wire formats, each with the comma that precedes it in
// a message.
const (
	FieldCacheKey  = `,"cacheKey":`
	FieldMetadata  = `,"metadata":`
	FieldEvent     = `,"event":`
	FieldPayload   = `,"payload":`
	FieldTimestamp = `,"timestamp":`
)

// emptyObject is what goes on the wire for nil metadata or payload.
const emptyObject = "{}"

// emptyRaw is emptyObject as EncodeValue returns it, without an
// allocation. It is only ever copied into a message.
var emptyRaw = json.RawMessage(emptyObject)

// Head returns `{"instanceId":"<id>"`, how every message of an instance
// starts; encode it once per instance and pass it to [Encode].
func Head(instanceID string) []byte {
	return appendString([]byte(`{"instanceId":`), instanceID)
}

// Encode returns head (from [Head]), then nameField (FieldCacheKey or
// FieldEvent) and name as a JSON string, then rawField (FieldMetadata or
// FieldPayload) and raw, then the timestamp: an invalidation or a shard
// event. raw must be valid compact JSON, as [EncodeValue] returns; empty
// or null goes as {}. It allocates once unless name needs escaping.
func Encode(head []byte, nameField, name, rawField string, raw json.RawMessage, ts time.Time) []byte {
	if isEmpty(raw) {
		raw = emptyRaw
	}
	const tail = len(FieldTimestamp) + 20 + 1 // the timestamp's digits and sign, the closing brace
	b := make([]byte, 0, len(head)+len(nameField)+len(name)+2+len(rawField)+len(raw)+tail)
	b = append(b, head...)
	b = append(b, nameField...)
	b = appendString(b, name)
	b = append(b, rawField...)
	b = append(b, raw...)
	b = append(b, FieldTimestamp...)
	b = strconv.AppendInt(b, ts.UnixMilli(), 10)
	return append(b, '}')
}

// EncodeInvalidation returns the wire message of an invalidation of key
// (or of a glob, for the pattern channel) by instanceID.
func EncodeInvalidation(instanceID, key string, meta json.RawMessage, ts time.Time) []byte {
	return Encode(Head(instanceID), FieldCacheKey, key, FieldMetadata, meta, ts)
}

// EncodeEvent returns the wire message of a shard event on topic by
// instanceID.
func EncodeEvent(instanceID, topic string, payload json.RawMessage, ts time.Time) []byte {
	return Encode(Head(instanceID), FieldEvent, topic, FieldPayload, payload, ts)
}

// EncodeValue encodes metadata or a payload as [driver.EncodePayload] does
// (same limit, same errors) and also refuses a value nested deeper than
// [MaxDepth], which receivers would refuse. nil, and any value that
// encodes to null, is returned as {} without an allocation; the result
// is not to be modified.
func EncodeValue(v any, max int) (json.RawMessage, error) {
	if v == nil {
		return emptyRaw, nil
	}
	raw, err := driver.EncodePayload(v, max)
	if err != nil {
		return nil, err
	}
	if isEmpty(raw) {
		return emptyRaw, nil
	}
	// raw is valid and compact: only its depth can fail, and nesting
	// deeper than MaxDepth takes more than 2*MaxDepth bytes.
	if len(raw) > 2*MaxDepth && !scanCompact(string(raw)) {
		return nil, fmt.Errorf("%w: payload nested deeper than %d", coord.ErrInvalid, MaxDepth)
	}
	return raw, nil
}

// Metadata returns raw as an Invalidation's Metadata: nil when raw is
// empty (missing, null or {}).
func Metadata(raw json.RawMessage) json.RawMessage {
	if isEmpty(raw) {
		return nil
	}
	return raw
}

// Payload returns raw as an Event's Payload: null when raw is empty
// (missing, null or {}).
func Payload(raw json.RawMessage) json.RawMessage {
	if isEmpty(raw) {
		return json.RawMessage("null")
	}
	return raw
}

// isEmpty reports whether compact raw is missing, null or {}.
func isEmpty[T ~string | ~[]byte](raw T) bool {
	return len(raw) == 0 || string(raw) == "null" || string(raw) == emptyObject
}

// DecodeInvalidation decodes a message from an invalidation channel: the
// key channel, or the pattern channel when pattern is true. The error
// wraps [ErrMalformed].
func DecodeInvalidation(msg string, pattern bool) (coord.Invalidation, error) {
	return decodeInvalidation(msg, pattern, false)
}

// DecodeInvalidationView is [DecodeInvalidation] for a caller that owns
// msg and bounds what keeping it alive costs (a subscriber that received
// it as a string of its own): the key and instance ID of a message in the
// layout coord and the Node design write are slices of msg instead of
// copies, so such a message without metadata decodes without an
// allocation. Metadata and trace are still copies (a handler may write to
// Metadata). Any other layout decodes as DecodeInvalidation does.
func DecodeInvalidationView(msg string, pattern bool) (coord.Invalidation, error) {
	return decodeInvalidation(msg, pattern, true)
}

func decodeInvalidation(msg string, pattern, view bool) (coord.Invalidation, error) {
	kind := coord.KeyInvalidation
	if pattern {
		kind = coord.PatternInvalidation
	}
	full, trace := msg, coord.TraceCarrier(nil)
	if head, c, ok := cutTrace(msg); ok {
		msg, trace = head, c
	}
	if id, key, raw, ts, ok := fastEnvelope(msg, sepCacheKey, sepMetadata); ok {
		switch {
		case pattern && driver.ValidateGlob(key) != nil:
			return coord.Invalidation{}, errGlob
		case !pattern && !plainName(key):
			return coord.Invalidation{}, errKey
		}
		if isEmpty(raw) {
			raw = ""
		}
		var meta json.RawMessage
		if view {
			if raw != "" {
				meta = json.RawMessage(raw)
			}
		} else {
			id, key, meta = own(id, key, raw)
		}
		return coord.Invalidation{Kind: kind, Key: key, Metadata: meta, InstanceID: id, Timestamp: time.UnixMilli(ts), Trace: ownTrace(trace)}, nil
	}
	return decodeInvalidationSlow(full, pattern)
}

// DecodeEvent decodes a message from the shard event channel. The error
// wraps [ErrMalformed].
func DecodeEvent(msg string) (coord.Event, error) {
	return decodeEvent(msg, false)
}

// DecodeEventView is [DecodeEvent] with the topic and instance ID sliced
// from msg, as [DecodeInvalidationView] does; the payload is a copy.
func DecodeEventView(msg string) (coord.Event, error) {
	return decodeEvent(msg, true)
}

func decodeEvent(msg string, view bool) (coord.Event, error) {
	full, trace := msg, coord.TraceCarrier(nil)
	if head, c, ok := cutTrace(msg); ok {
		msg, trace = head, c
	}
	if id, topic, raw, ts, ok := fastEnvelope(msg, sepEvent, sepPayload); ok {
		if !plainName(topic) {
			return coord.Event{}, errEvent
		}
		if isEmpty(raw) {
			raw = "null"
		}
		var payload json.RawMessage
		if view {
			payload = json.RawMessage(raw)
		} else {
			id, topic, payload = own(id, topic, raw)
		}
		return coord.Event{Topic: topic, Payload: payload, InstanceID: id, Timestamp: time.UnixMilli(ts), Trace: ownTrace(trace)}, nil
	}
	return decodeEventSlow(full)
}

// The separators fastEnvelope looks for after the instance ID (sep1) and
// after the first value (sep2).
const (
	sepCacheKey = FieldCacheKey + `"`
	sepMetadata = FieldMetadata
	sepEvent    = FieldEvent + `"`
	sepPayload  = FieldPayload
)

// fastEnvelope parses a message laid out exactly as coord and the Node
// design write it: {"instanceId":"<id>","<k1>":"<v1>","<k2>":<raw JSON>,
// "timestamp":<digits>}, with strings that need no unescaping, raw
// compact and within MaxDepth, the timestamp an integer within range; sep1
// is `,"<k1>":"` and sep2 `,"<k2>":`. ok is false for anything else, which
// the caller then decodes with encoding/json: it agrees with the slow
// path on everything it accepts (FuzzDecode). id is a valid name;
// v1 is valid UTF-8 without control bytes. The results slice msg.
func fastEnvelope(msg, sep1, sep2 string) (id, v1, raw string, ts int64, ok bool) {
	rest, ok := strings.CutPrefix(msg, `{"instanceId":"`)
	if !ok {
		return
	}
	if id, rest, ok = cutPlain(rest); !ok || !plainName(id) {
		return "", "", "", 0, false
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
	// The end: `,"timestamp":`, an integer as JSON writes it, of at most
	// 16 digits (others go to encoding/json), and the closing brace.
	end := len(rest) - 1
	if end < 0 || rest[end] != '}' {
		return "", "", "", 0, false
	}
	k := end
	for k > 0 && rest[k-1] >= '0' && rest[k-1] <= '9' {
		k--
	}
	digits := rest[k:end]
	if digits == "" || len(digits) > 16 || (len(digits) > 1 && digits[0] == '0') {
		return "", "", "", 0, false
	}
	neg := k > 0 && rest[k-1] == '-'
	if neg {
		k--
	}
	if !strings.HasSuffix(rest[:k], FieldTimestamp) {
		return "", "", "", 0, false
	}
	for i := 0; i < len(digits); i++ {
		ts = ts*10 + int64(digits[i]-'0')
	}
	if ts > MaxTimestamp {
		return "", "", "", 0, false
	}
	if neg {
		ts = -ts
	}
	raw = rest[:k-len(FieldTimestamp)]
	if raw != "null" && raw != emptyObject && !scanCompact(raw) {
		return "", "", "", 0, false
	}
	return id, v1, raw, ts, true
}

// own copies id, name and raw into one new buffer and returns them from
// it, so that nothing refers to the message they were cut from. raw may
// be empty (nil result). The strings are never written to again: the
// buffer's only writable view is the returned slice, which covers raw's
// part alone (its capacity ends there).
func own(id, name, raw string) (string, string, json.RawMessage) {
	n := len(id) + len(name)
	buf := make([]byte, n+len(raw))
	copy(buf, id)
	copy(buf[len(id):], name)
	copy(buf[n:], raw)
	var r json.RawMessage
	if raw != "" {
		r = buf[n:len(buf):len(buf)]
	}
	return bytesString(buf[:len(id)]), bytesString(buf[len(id):n]), r
}

// plainName is [driver.ValidateName] for a string cutPlain returned,
// already known to be valid UTF-8 without control bytes.
func plainName(s string) bool {
	return s != "" && len(s) <= coord.MaxNameLen
}

// cutPlain reads a JSON string body up to its closing quote; ok is false
// when it holds an escape, a control byte (below 0x20, or 0x7f) or
// invalid UTF-8.
func cutPlain(s string) (body, rest string, ok bool) {
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			if body = s[:i]; !ascii && !utf8.ValidString(body) {
				return "", "", false
			}
			return body, s[i+1:], true
		case c < 0x20 || c == '\\' || c == 0x7f:
			return "", "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", "", false
}

// appendString appends s as a JSON string.
func appendString(dst []byte, s string) []byte {
	if plainString(s) {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

// plainString reports whether s is valid UTF-8 that needs no escape
// inside a JSON string.
func plainString(s string) bool {
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

// decodeInvalidationSlow is DecodeInvalidation with encoding/json.
func decodeInvalidationSlow(msg string, pattern bool) (coord.Invalidation, error) {
	f, err := fields(msg)
	if err != nil {
		return coord.Invalidation{}, err
	}
	id, err := instance(f)
	if err != nil {
		return coord.Invalidation{}, err
	}
	inv := coord.Invalidation{Kind: coord.KeyInvalidation, InstanceID: id}
	key, ok := str(f["cacheKey"])
	switch {
	case pattern:
		inv.Kind = coord.PatternInvalidation
		if !ok || driver.ValidateGlob(key) != nil {
			return coord.Invalidation{}, errGlob
		}
	case !ok || driver.ValidateName("key", key) != nil:
		return coord.Invalidation{}, errKey
	}
	inv.Key = key
	if inv.Timestamp, err = timestamp(f["timestamp"]); err != nil {
		return coord.Invalidation{}, err
	}
	meta, err := value(f["metadata"])
	if err != nil {
		return coord.Invalidation{}, err
	}
	inv.Metadata = Metadata(meta)
	inv.Trace = decodeTrace(f["trace"])
	return inv, nil
}

// decodeEventSlow is DecodeEvent with encoding/json.
func decodeEventSlow(msg string) (coord.Event, error) {
	f, err := fields(msg)
	if err != nil {
		return coord.Event{}, err
	}
	id, err := instance(f)
	if err != nil {
		return coord.Event{}, err
	}
	topic, ok := str(f["event"])
	if !ok || driver.ValidateName("event", topic) != nil {
		return coord.Event{}, errEvent
	}
	ts, err := timestamp(f["timestamp"])
	if err != nil {
		return coord.Event{}, err
	}
	payload, err := value(f["payload"])
	if err != nil {
		return coord.Event{}, err
	}
	return coord.Event{Topic: topic, Payload: Payload(payload), InstanceID: id, Timestamp: ts, Trace: decodeTrace(f["trace"])}, nil
}

// fields splits a message into its top-level fields, matched by exact
// name, the last of repeated ones winning (as JSON.parse does). The
// values are copies.
func fields(msg string) (map[string]json.RawMessage, error) {
	var f map[string]json.RawMessage
	if err := json.Unmarshal([]byte(msg), &f); err != nil || f == nil {
		return nil, errNotObject
	}
	return f, nil
}

// instance returns the message's instance ID.
func instance(f map[string]json.RawMessage) (string, error) {
	id, ok := str(f["instanceId"])
	if !ok || driver.ValidateName("instanceId", id) != nil {
		return "", errInstance
	}
	return id, nil
}

// str decodes raw as a JSON string; ok is false when it is anything else
// (null included).
func str(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// timestamp decodes a timestamp field; missing or null is the zero time.
func timestamp(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return time.Time{}, errTimestamp
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		if n > MaxTimestamp || n < -MaxTimestamp {
			return time.Time{}, errTimestamp
		}
		return time.UnixMilli(n), nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || !(f <= MaxTimestamp && f >= -MaxTimestamp) { // the negation also refuses NaN
		return time.Time{}, errTimestamp
	}
	return time.UnixMilli(int64(f)), nil
}

// value returns raw (a field's valid JSON) compact, in a new buffer;
// missing is nil.
func value(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	out := make([]byte, 0, len(raw))
	var err error
	if out, err = appendCompact(out, raw); err != nil {
		return nil, errNotObject
	}
	if !scanCompact(string(out)) { // valid and compact: only depth can fail
		return nil, errDepth
	}
	return out, nil
}
