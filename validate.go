package coord

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// Limits shared by every backend, so that all of them reject the same
// inputs the same way.
const (
	// MaxNameLen is the longest resource name, user ID, cache key, glob,
	// topic or session data key, in bytes.
	MaxNameLen = 512

	// DefaultMaxPayload is the default limit, in bytes, on an encoded event
	// payload, invalidation metadata, or a session's encoded data.
	DefaultMaxPayload = 1 << 20
)

// ValidateName reports whether name may be used as a resource, user ID,
// cache key, topic or data key. what names the argument in the error.
// A valid name is 1 to [MaxNameLen] bytes of valid UTF-8 with no control
// characters. The error wraps [ErrInvalid].
func ValidateName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, what)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %s is %d bytes, over the limit of %d", ErrInvalid, what, len(name), MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, what)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w: %s contains control character %#x at byte %d", ErrInvalid, what, c, i)
		}
	}
	return nil
}

// ValidateGlob reports whether glob is a pattern every backend accepts:
// a valid name (see [ValidateName]) whose character classes are closed
// and which does not end in a lone backslash. Accepted patterns match
// exactly as Redis's glob does; see [MatchGlob]. The error wraps
// [ErrInvalid].
func ValidateGlob(glob string) error {
	if err := ValidateName("glob", glob); err != nil {
		return err
	}
	for i := 0; i < len(glob); i++ {
		switch glob[i] {
		case '\\':
			if i == len(glob)-1 {
				return fmt.Errorf("%w: glob %q ends in a lone backslash", ErrInvalid, glob)
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
				return fmt.Errorf("%w: glob %q has an unterminated '['", ErrInvalid, glob)
			}
			i = j
		}
	}
	return nil
}

// MatchGlob reports whether s matches pattern under Redis's glob rules
// (the rules of KEYS, SCAN MATCH and PSUBSCRIBE): '*' matches any run of
// bytes including '/', '?' any one byte, "[abc]", "[^abc]" and "[a-z]"
// one byte of a class, and '\' escapes the next byte. It works on bytes,
// as Redis does. Unlike [path.Match], '/' is not special.
func MatchGlob(pattern, s string) bool {
	skip := false
	return globMatch(pattern, s, &skip)
}

// globMatch is a transcription of Redis's stringmatchlen (util.c), case
// sensitive. skipLonger prunes the search once a '*' failed to match any
// suffix, exactly as Redis does.
func globMatch(p, s string, skipLonger *bool) bool {
	// at returns the pattern byte at i, or 0 past its end (C's NUL).
	at := func(i int) byte {
		if i < len(p) {
			return p[i]
		}
		return 0
	}
	for len(p) > 0 && len(s) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for len(s) > 0 {
				if globMatch(p[1:], s, skipLonger) {
					return true
				}
				if *skipLonger {
					return false
				}
				s = s[1:]
			}
			*skipLonger = true
			return false
		case '?':
			s = s[1:]
		case '[':
			p = p[1:]
			not := at(0) == '^'
			if not {
				p = p[1:]
			}
			match := false
			for {
				if at(0) == '\\' && len(p) >= 2 {
					p = p[1:]
					if p[0] == s[0] {
						match = true
					}
				} else if at(0) == ']' && len(p) > 0 {
					break
				} else if len(p) == 0 {
					// Unterminated class: step back so the loop's
					// advance below ends on the last byte.
					p = " "
					break
				} else if len(p) >= 3 && p[1] == '-' {
					// Redis compares plain (signed) chars.
					start, end, c := int(int8(p[0])), int(int8(p[2])), int(int8(s[0]))
					if start > end {
						start, end = end, start
					}
					p = p[2:]
					if c >= start && c <= end {
						match = true
					}
				} else if p[0] == s[0] {
					match = true
				}
				p = p[1:]
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			s = s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if p[0] != s[0] {
				return false
			}
			s = s[1:]
		}
		p = p[1:]
		if len(s) == 0 {
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			break
		}
	}
	return len(p) == 0 && len(s) == 0
}

// ValidateTTL reports whether d may be used as a TTL or lifetime: it must
// be positive and at least a millisecond, the resolution every backend
// keeps. The error wraps [ErrInvalid].
func ValidateTTL(what string, d time.Duration) error {
	if d < time.Millisecond {
		return fmt.Errorf("%w: %s %v must be at least 1ms", ErrInvalid, what, d)
	}
	return nil
}

// EncodePayload encodes v as the JSON carried by an event or an
// invalidation's metadata. A [json.RawMessage] goes as is once checked to
// be valid JSON (and compacted); nil encodes as null; anything else is
// marshalled (a []byte as a base64 string, as encoding/json does). The
// result is compact. An error wraps [ErrInvalid]
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
			return nil, fmt.Errorf("%w: payload cannot be encoded: %v", ErrInvalid, err)
		}
		if len(b) > max {
			return nil, fmt.Errorf("%w: payload is %d bytes, over the limit of %d", ErrInvalid, len(b), max)
		}
		// json.Marshal's output is valid and compact (it compacts what
		// MarshalJSON methods and RawMessages return): no second pass.
		return b, nil
	}
	if len(raw) > max {
		return nil, fmt.Errorf("%w: payload is %d bytes, over the limit of %d", ErrInvalid, len(raw), max)
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%w: payload is not valid JSON", ErrInvalid)
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("%w: payload is not valid JSON: %v", ErrInvalid, err)
	}
	return json.RawMessage(buf.Bytes()), nil
}

// EncodeData validates and encodes session data for [SessionStore.Create]
// and [SessionStore.Update]. Each value is encoded as by [EncodePayload];
// a nil value (or JSON null) means "delete this field" and is returned in
// deletes when allowDelete is true, and is dropped otherwise. Keys must
// be valid names. The encoded keys and values together may not exceed max
// bytes (max <= 0 means [DefaultMaxPayload]). Errors wrap [ErrInvalid].
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
			return nil, nil, fmt.Errorf("%w: session data is over the limit of %d bytes", ErrInvalid, max)
		}
		sets[k] = raw
	}
	return sets, deletes, nil
}
