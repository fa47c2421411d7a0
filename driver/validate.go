package driver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/cgn-bot/coord"
)

// DefaultMaxPayload is the default limit, in bytes, on an encoded event
// payload, invalidation metadata, or a session's encoded data.
const DefaultMaxPayload = 1 << 20

// ValidateName reports whether name may be used as a resource, user ID,
// cache key, topic or data key. what names the argument in the error.
// A valid name is 1 to [coord.MaxNameLen] bytes of valid UTF-8 with no control
// characters. The error wraps [coord.ErrInvalid].
func ValidateName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s is empty", coord.ErrInvalid, what)
	}
	if len(name) > coord.MaxNameLen {
		return fmt.Errorf("%w: %s is %d bytes, over the limit of %d", coord.ErrInvalid, what, len(name), coord.MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: %s is not valid UTF-8", coord.ErrInvalid, what)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w: %s contains control character %#x at byte %d", coord.ErrInvalid, what, c, i)
		}
	}
	return nil
}

// ValidateGlob reports whether glob is a pattern every backend accepts:
// a valid name (see [ValidateName]) whose character classes are closed
// and which does not end in a lone backslash. Accepted patterns match
// exactly as Redis's glob does; see [coord.MatchGlob]. The error wraps
// [coord.ErrInvalid].
func ValidateGlob(glob string) error {
	if err := ValidateName("glob", glob); err != nil {
		return err
	}
	for i := 0; i < len(glob); i++ {
		switch glob[i] {
		case '\\':
			if i == len(glob)-1 {
				return fmt.Errorf("%w: glob %q ends in a lone backslash", coord.ErrInvalid, glob)
			}
			i++
		case '[':
			j := i + 1
			if j < len(glob) && glob[j] == '^' {
				j++
			}
			closed := false
			for ; j < len(glob); j++ {
				if glob[j] == '\\' && j+1 < len(glob) {
					j++
					continue
				}
				if glob[j] == ']' {
					closed = true
					break
				}
			}
			if !closed {
				return fmt.Errorf("%w: glob %q has an unterminated '['", coord.ErrInvalid, glob)
			}
			i = j
		}
	}
	return nil
}

// ValidateTTL reports whether d may be used as a TTL or lifetime: it must
// be positive and at least a millisecond, the resolution every backend
// keeps. The error wraps [coord.ErrInvalid].
func ValidateTTL(what string, d time.Duration) error {
	if d < time.Millisecond {
		return fmt.Errorf("%w: %s %v must be at least 1ms", coord.ErrInvalid, what, d)
	}
	return nil
}

// EncodePayload encodes v as the JSON carried by an event or an
// invalidation's metadata. A [json.RawMessage] goes as is once checked to
// be valid JSON (and compacted); nil encodes as null; anything else is
// marshalled (a []byte as a base64 string, as encoding/json does). The
// result is compact. An error wraps [coord.ErrInvalid]
// when v cannot be encoded, is not valid JSON, or encodes to more than max
// bytes (max <= 0 means [DefaultMaxPayload]).
func EncodePayload(v any, max int) (json.RawMessage, error) {
	if max <= 0 {
		max = DefaultMaxPayload
	}
	var raw []byte
	switch t := v.(type) {
	case nil:
		raw = []byte("null")
	case json.RawMessage:
		raw = t
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: payload cannot be encoded: %v", coord.ErrInvalid, err)
		}
		if len(b) > max {
			return nil, fmt.Errorf("%w: payload is %d bytes, over the limit of %d", coord.ErrInvalid, len(b), max)
		}
		// json.Marshal's output is valid and compact (it compacts what
		// MarshalJSON methods and RawMessages return): no second pass.
		return b, nil
	}
	if len(raw) > max {
		return nil, fmt.Errorf("%w: payload is %d bytes, over the limit of %d", coord.ErrInvalid, len(raw), max)
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%w: payload is not valid JSON", coord.ErrInvalid)
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("%w: payload is not valid JSON: %v", coord.ErrInvalid, err)
	}
	return json.RawMessage(buf.Bytes()), nil
}

// EncodeData validates and encodes session data for [coord.SessionStore.Create]
// and [coord.SessionStore.Update]. Each value is encoded as by [EncodePayload];
// a nil value (or JSON null) means "delete this field" and is returned in
// deletes when allowDelete is true, and is dropped otherwise. Keys must
// be valid names. The encoded keys and values together may not exceed max
// bytes (max <= 0 means [DefaultMaxPayload]). Errors wrap [coord.ErrInvalid].
func EncodeData(data map[string]any, allowDelete bool, max int) (sets map[string]json.RawMessage, deletes []string, err error) {
	if max <= 0 {
		max = DefaultMaxPayload
	}
	sets = make(map[string]json.RawMessage, len(data))
	total := 0
	for k, v := range data {
		if err := ValidateName("session data key", k); err != nil {
			return nil, nil, err
		}
		raw, err := EncodePayload(v, max)
		if err != nil {
			return nil, nil, fmt.Errorf("session data key %q: %w", k, err)
		}
		if string(raw) == "null" {
			if !allowDelete {
				continue
			}
			deletes = append(deletes, k)
			continue
		}
		total += len(k) + len(raw)
		if total > max {
			return nil, nil, fmt.Errorf("%w: session data is over the limit of %d bytes", coord.ErrInvalid, max)
		}
		sets[k] = raw
	}
	return sets, deletes, nil
}
