package coord

// MaxNameLen is the longest resource name, user ID, cache key, glob,
// topic or session data key, in bytes. Every backend refuses a longer one
// with an error wrapping [ErrInvalid], so a caller that builds names from
// user input can check them against it first.
const MaxNameLen = 512

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
