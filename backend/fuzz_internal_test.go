package backend

import (
	"errors"
	"strings"
	"testing"

	"github.com/cgn-bot/coord"
)

// FuzzParseTarget checks that any URL either parses or fails with an error
// wrapping coord.ErrInvalid, never panics, and never puts the URL's
// password in the error. parseTarget does no I/O, so fuzzing sends nothing
// anywhere.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"", "mem://", "mem://orders?instance=a", "mem://x?size=1", "mem://a:1",
		"redis://127.0.0.1:6379/0", "rediss://user:pw@127.0.0.1:6380/2?prefix=app:&instance=i",
		"redis://:sekret@host/0?dial_timeout=1s", "redis://host?bogus=1", "redis://host/x",
		"redis://u:p%zz@host", "redis://[::1]:6379", "ftp://x", "::", "redis://host?prefix=a{b}",
		"redis://h?%gg=1", "redis://:pw@h:notaport",
		"redis://:000000@000000000000000000", // the password is part of the host too
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tg, err := parseTarget(raw, nil)
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("parseTarget(%q): %v does not wrap coord.ErrInvalid", raw, err)
			}
			if pw := password(raw); checkable(raw, pw) && strings.Contains(err.Error(), pw) {
				t.Fatalf("parseTarget(%q): the error carries the password: %v", raw, err)
			}
			return
		}
		if tg.memory == (tg.gopts != nil) {
			t.Fatalf("parseTarget(%q): target %+v is neither memory nor Redis", raw, tg)
		}
		if pw := password(raw); checkable(raw, pw) && strings.Contains(tg.where, pw) {
			t.Fatalf("parseTarget(%q): where %q carries the password", raw, tg.where)
		}
	})
}

// checkable reports whether a message's carrying pw would show that it
// leaks raw's password: pw is long enough not to turn up by chance, and
// appears nowhere in raw but in its userinfo (in
// "redis://:000000@000000000000", the host carries "000000" too).
func checkable(raw, pw string) bool {
	if len(pw) < 4 {
		return false
	}
	at := strings.Index(raw, ":"+pw+"@")
	return at >= 0 && !strings.Contains(raw[:at+1]+raw[at+1+len(pw):], pw)
}

// password returns what a URL's userinfo holds after its first colon, as
// written (it may be percent-encoded).
func password(raw string) string {
	i := strings.Index(raw, "://")
	if i < 0 {
		return ""
	}
	rest := raw[i+3:]
	if end := strings.IndexAny(rest, "/?#"); end >= 0 {
		rest = rest[:end] // the authority
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	if c := strings.Index(rest[:at], ":"); c >= 0 {
		return rest[c+1 : at]
	}
	return ""
}
