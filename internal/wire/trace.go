package wire

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/cgn-bot/coord"
)

// FieldTrace is the optional trace context field, with the comma that
// precedes it. coord writes it last, after the timestamp, and only when
// the publisher attached a carrier ([coord.WithTrace]). Receivers that do
// not know it (the Node fleet, older coord) ignore it as they ignore
// every unknown field.
const FieldTrace = `,"trace":`

// Bounds of a trace field's keys and values, beyond
// [coord.MaxTraceFields] and [coord.MaxTraceBytes].
const (
	// MaxTraceKey is the longest key.
	MaxTraceKey = 64
	// MaxTraceValue is the longest value (W3C tracestate's limit).
	MaxTraceValue = 512
)

// ValidTrace reports whether c can go on the wire: 1 to
// [coord.MaxTraceFields] fields, each key 1 to [MaxTraceKey] bytes of
// lowercase letters, digits and "_-*/.", each value at most
// [MaxTraceValue] bytes of printable ASCII other than '"' and '\', keys
// and values [coord.MaxTraceBytes] bytes in all. A carrier that fails is
// neither sent nor, received, delivered: the message goes without it.
func ValidTrace(c coord.TraceCarrier) bool {
	if len(c) == 0 || len(c) > coord.MaxTraceFields {
		return false
	}
	total := 0
	for k, v := range c {
		if !traceKey(k) || !traceValue(v) {
			return false
		}
		total += len(k) + len(v)
	}
	return total <= coord.MaxTraceBytes
}

func traceKey(k string) bool {
	if k == "" || len(k) > MaxTraceKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', strings.IndexByte("_-*/.", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func traceValue(v string) bool {
	if len(v) > MaxTraceValue {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// AppendTrace returns msg (a message from [Encode]) with c as its trace
// field, last. A nil, empty or invalid ([ValidTrace]) c leaves msg as it
// is: trace context is optional and never costs a message.
func AppendTrace(msg []byte, c coord.TraceCarrier) []byte {
	if len(c) == 0 || len(msg) == 0 || msg[len(msg)-1] != '}' || !ValidTrace(c) {
		return msg
	}
	keys := make([]string, 0, len(c))
	n := 0
	for k, v := range c {
		keys = append(keys, k)
		n += len(k) + len(v) + 6
	}
	sort.Strings(keys)
	out := make([]byte, 0, len(msg)+len(FieldTrace)+n+2)
	out = append(out, msg[:len(msg)-1]...)
	out = append(out, FieldTrace...)
	for i, k := range keys {
		if i == 0 {
			out = append(out, '{')
		} else {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, k...)
		out = append(out, `":"`...)
		out = append(out, c[k]...)
		out = append(out, '"')
	}
	return append(out, "}}"...)
}

// decodeTrace returns the carrier in a trace field's raw JSON, or nil
// when it is missing, not an object of strings, or fails [ValidTrace].
// A refused trace never refuses the message.
func decodeTrace(raw json.RawMessage) coord.TraceCarrier {
	if len(raw) == 0 || raw[0] != '{' || len(raw) > 2*coord.MaxTraceBytes+coord.MaxTraceFields*8 {
		return nil
	}
	var c coord.TraceCarrier
	if json.Unmarshal(raw, &c) != nil || !ValidTrace(c) {
		return nil
	}
	return c
}

// ownTrace is c, a carrier cutTrace returned, when it passes
// [ValidTrace], with its strings copied (they slice the received
// message); else nil.
func ownTrace(c coord.TraceCarrier) coord.TraceCarrier {
	if !ValidTrace(c) {
		return nil
	}
	out := make(coord.TraceCarrier, len(c))
	for k, v := range c {
		out[strings.Clone(k)] = strings.Clone(v)
	}
	return out
}

// cutTrace splits a message that ends with a trace field, as
// [AppendTrace] writes it, into the message without it and the field's
// carrier (its strings slice msg); ok is false when msg does not end so,
// and the caller decodes msg as it is. The field's value is a flat
// object of strings without escapes, so the field found is the
// message's last top-level one. The field is found from the end: the
// last '{' (a message without a trace, ending in its timestamp, is
// looked at no further), which must follow the field's name. A value
// holding a '{' is not found so, and encoding/json reads the message.
func cutTrace(msg string) (head string, c coord.TraceCarrier, ok bool) {
	if !strings.HasSuffix(msg, "}}") {
		return "", nil, false
	}
	j := strings.LastIndexByte(msg[:len(msg)-1], '{')
	i := j - len(FieldTrace)
	if i < 0 || msg[i:j] != FieldTrace {
		return "", nil, false
	}
	if c, ok = flatObject(msg[j : len(msg)-1]); !ok {
		return "", nil, false
	}
	return msg[:i] + "}", c, true
}

// flatObject reads raw as AppendTrace writes a carrier: {"k":"v",…}, one
// or more fields, strings without escapes or control bytes, no spaces.
// ok is false for anything else, which encoding/json then reads. A
// repeated key keeps its last value, as encoding/json does.
func flatObject(raw string) (c coord.TraceCarrier, ok bool) {
	rest, ok := strings.CutPrefix(raw, `{"`)
	if !ok {
		return nil, false
	}
	c = make(coord.TraceCarrier, 2)
	for {
		var k, v string
		if k, rest, ok = cutPlain(rest); !ok {
			return nil, false
		}
		if rest, ok = strings.CutPrefix(rest, `:"`); !ok {
			return nil, false
		}
		if v, rest, ok = cutPlain(rest); !ok {
			return nil, false
		}
		c[k] = v
		if rest == "}" {
			return c, true
		}
		if rest, ok = strings.CutPrefix(rest, `,"`); !ok || len(c) > coord.MaxTraceFields {
			return nil, false
		}
	}
}

// TraceSize is what a carrier holds, in bytes: the lengths of its keys
// and values (the queues charge it to their byte budget).
func TraceSize(c coord.TraceCarrier) int {
	n := 0
	for k, v := range c {
		n += len(k) + len(v)
	}
	return n
}
