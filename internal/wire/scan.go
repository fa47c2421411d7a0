package wire

import (
	"bytes"
	"encoding/json"
	"unsafe"
)

// scanCompact reports whether s is exactly one JSON value, written with
// no whitespace outside strings (as json.Compact writes it) and with
// arrays and objects nested at most MaxDepth deep. It never accepts what
// json.Valid refuses; like json.Valid it does not check that string bytes
// are UTF-8. It does not recurse.
func scanCompact(s string) bool {
	var stack [MaxDepth]byte // the open containers: '{' or '['
	depth, i := 0, 0
	const (
		wantValue = iota // a value
		wantKey          // an object key and its colon, then a value
		wantNext         // after a value: the end, a comma or a closing bracket
	)
	state := wantValue
	for {
		switch state {
		case wantValue:
			if i >= len(s) {
				return false
			}
			switch c := s[i]; c {
			case '{', '[':
				if depth == MaxDepth {
					return false
				}
				stack[depth] = c
				depth++
				i++
				state = wantKey
				if c == '[' {
					state = wantValue
				}
				if i < len(s) && s[i] == c+2 { // '}' is '{'+2, ']' is '['+2
					depth--
					i++
					state = wantNext
				}
				continue
			case '"':
				var ok bool
				if i, ok = ScanString(s, i); !ok {
					return false
				}
			case 't':
				if !hasWord(s, i, "true") {
					return false
				}
				i += 4
			case 'f':
				if !hasWord(s, i, "false") {
					return false
				}
				i += 5
			case 'n':
				if !hasWord(s, i, "null") {
					return false
				}
				i += 4
			default:
				var ok bool
				if i, ok = ScanNumber(s, i); !ok {
					return false
				}
			}
			state = wantNext
		case wantKey:
			if i >= len(s) || s[i] != '"' {
				return false
			}
			var ok bool
			if i, ok = ScanString(s, i); !ok || i >= len(s) || s[i] != ':' {
				return false
			}
			i++
			state = wantValue
		case wantNext:
			if depth == 0 {
				return i == len(s)
			}
			if i >= len(s) {
				return false
			}
			switch c := s[i]; {
			case c == ',':
				i++
				state = wantValue
				if stack[depth-1] == '{' {
					state = wantKey
				}
			case c == stack[depth-1]+2:
				depth--
				i++
			default:
				return false
			}
		}
	}
}

func hasWord(s string, i int, w string) bool {
	return len(s)-i >= len(w) && s[i:i+len(w)] == w
}

// text is what the scanners read: a received message (string) or a
// stored value ([]byte).
type text interface{ ~string | ~[]byte }

// ScanString scans the JSON string whose opening quote is s[i] and
// returns the index just past its closing quote. Like json.Valid, it does
// not check that the bytes are UTF-8.
func ScanString[T text](s T, i int) (int, bool) {
	i++
	for i < len(s) {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		switch {
		case c == '"':
			return i + 1, true
		case c < 0x20 || i+1 >= len(s):
			return i, false
		}
		switch s[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if len(s)-i < 6 || !isHex(s[i+2]) || !isHex(s[i+3]) || !isHex(s[i+4]) || !isHex(s[i+5]) {
				return i, false
			}
			i += 6
		default:
			return i, false
		}
	}
	return i, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// ScanNumber scans the JSON number at s[i]: an optional minus, 0 or
// digits without a leading zero, an optional fraction, an optional
// exponent, and returns the index just past it.
func ScanNumber[T text](s T, i int) (int, bool) {
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i >= len(s):
		return i, false
	case s[i] == '0':
		i++
	case s[i] >= '1' && s[i] <= '9':
		i = skipDigits(s, i+1)
	default:
		return i, false
	}
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := skipDigits(s, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func skipDigits[T text](s T, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// appendCompact appends src, valid JSON, without insignificant
// whitespace.
func appendCompact(dst, src []byte) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	if err := json.Compact(buf, src); err != nil {
		return dst, err
	}
	return buf.Bytes(), nil
}

// bytesString returns b as a string without a copy. The caller never
// writes to b again.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
