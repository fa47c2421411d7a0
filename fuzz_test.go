package coord_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// The fuzz targets of this file check that everything that parses input
// from users or from the wire refuses what it must with an error wrapping
// coord.ErrInvalid and never panics. Seeds are here and in
// testdata/fuzz/<target>/; reliability/fuzz.sh runs each target for a
// short time.

// escapeGlob returns a pattern that matches exactly s.
func escapeGlob(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func FuzzMatchGlob(f *testing.F) {
	for _, c := range [][2]string{
		{"*", "a/b"}, {"h?llo", "hello"}, {"h[^e]llo", "hallo"}, {"[a-", "a"}, {"[", "["}, {"\\", "\\"},
		{"a*b*c*d", "abcabcabcd"}, {"[c-a]", "b"}, {"[\\]]", "]"}, {"*\xff*", "\xff"}, {"[\x80-\xff]", "\x90"},
		{"**", ""}, {"?", ""}, {"a[", "a"}, {"[^", "x"},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		coord.MatchGlob(pattern, s) // must not panic, whatever the pattern
		if !coord.MatchGlob(escapeGlob(s), s) {
			t.Fatalf("the escaped pattern %q does not match %q", escapeGlob(s), s)
		}
		// Redis's matcher (and so MatchGlob) never matches the empty
		// string, not even with "*"; names are never empty.
		if len(s) > 0 && !coord.MatchGlob("*", s) {
			t.Fatalf(`"*" does not match %q`, s)
		}
		if len(s) > 0 && !coord.MatchGlob(strings.Repeat("?", len(s)), s) {
			t.Fatalf("%d '?' do not match %q", len(s), s)
		}
		if coord.MatchGlob(escapeGlob(s)+"?", s) {
			t.Fatalf("%q matches %q, one byte longer than it", escapeGlob(s)+"?", s)
		}
	})
}

// FuzzSessionToken gives arbitrary strings as session tokens to a memory
// store that issued one session: only that session's exact token finds it;
// anything else is ErrInvalid (not a token's shape) or ErrNotFound.
func FuzzSessionToken(f *testing.F) {
	hub := memory.NewHub(nil)
	n := hub.New(nil)
	f.Cleanup(func() { _ = n.Close(context.Background()) })
	ctx := context.Background()
	sess, err := n.Sessions().Create(ctx, "user-1", map[string]any{"k": "v"})
	if err != nil {
		f.Fatal(err)
	}
	tok := sess.ID
	f.Add(tok)
	f.Add(tok[:len(tok)-1])
	f.Add(tok + "A")
	f.Add(strings.ToUpper(tok))
	f.Add(sess.Handle)
	f.Add("s1." + strings.Repeat("A", 43))
	f.Add("s1." + strings.Repeat("_", 43))
	f.Add("s2" + tok[2:])
	f.Add("")
	f.Add("s1.")
	f.Add(tok + "\n")
	f.Fuzz(func(t *testing.T, id string) {
		s := n.Sessions()
		got, err := s.Get(ctx, id)
		if id == tok {
			if err != nil || got.UserID != "user-1" {
				t.Fatalf("Get(issued token) = %v, %v", got, err)
			}
			return
		}
		if err == nil {
			t.Fatalf("Get(%q) found session %+v of token %q", id, got, tok)
		}
		if !errors.Is(err, coord.ErrInvalid) && !errors.Is(err, coord.ErrNotFound) {
			t.Fatalf("Get(%q) = %v, want ErrInvalid or ErrNotFound", id, err)
		}
		if strings.Contains(err.Error(), tok) {
			t.Fatalf("Get(%q)'s error carries the issued token", id)
		}
		if ok, err := s.Exists(ctx, id); ok || (err != nil && !errors.Is(err, coord.ErrInvalid)) {
			t.Fatalf("Exists(%q) = %v, %v", id, ok, err)
		}
		for name, op := range map[string]func() error{
			"Touch":  func() error { _, err := s.Touch(ctx, id); return err },
			"Update": func() error { return s.Update(ctx, id, map[string]any{"k": "x"}) },
			"Extend": func() error { return s.Extend(ctx, id, time.Hour) },
			"Rotate": func() error { _, err := s.Rotate(ctx, id); return err },
			// Another user's handle, or a token used as a handle.
			"Revoke(other user)": func() error { return s.Revoke(ctx, "user-2", id) },
			"Revoke(owner)": func() error {
				if id == sess.Handle {
					return coord.ErrNotFound // the owner may revoke by the real handle
				}
				return s.Revoke(ctx, "user-1", id)
			},
		} {
			if err := op(); !errors.Is(err, coord.ErrInvalid) && !errors.Is(err, coord.ErrNotFound) {
				t.Fatalf("%s(%q) = %v, want ErrInvalid or ErrNotFound", name, id, err)
			}
		}
		if err := s.Delete(ctx, id); err != nil && !errors.Is(err, coord.ErrInvalid) {
			t.Fatalf("Delete(%q) = %v", id, err)
		}
		if got, err := s.Get(ctx, tok); err != nil || got.Data["k"] == nil || string(got.Data["k"]) != `"v"` {
			t.Fatalf("the issued session changed after calls with %q: %v, %v", id, got, err)
		}
	})
}

// FuzzParseURL checks coordredis.ParseURL and FromLookup: errors wrap
// ErrInvalid and never carry the password.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"redis://localhost:6379/0", "rediss://user:s3cretpassw0rd@127.0.0.1:6380/2", "redis://:p%40ss@h",
		"redis://h?dial_timeout=1s&pool_size=3", "redis://h?bogus=1", "http://h", "redis://h:99999",
		"redis://user:pa ss@h", "redis://[::1]:6379", "redis://h/abc", "redis://h?protocol=4", "%zz", "rediss://",
		"redis://user:hunter2hunter2@h?db=x",
	} {
		f.Add(s, "6379", "0")
	}
	f.Fuzz(func(t *testing.T, raw, port, db string) {
		// tls_ca_file names a file to read; a fuzzed one could name
		// /dev/zero or a FIFO. The CA option is tested in reliability/.
		if u, err := url.Parse(raw); err == nil && u.Query().Has("tls_ca_file") {
			return
		}
		opts, err := coordredis.ParseURL(raw)
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("ParseURL(%q) = %v, which does not wrap ErrInvalid", raw, err)
			}
			if u, perr := url.Parse(raw); perr == nil {
				if pw, ok := u.User.Password(); ok && len(pw) >= 6 && !strings.Contains(strings.Replace(raw, pw, "", 1), pw) &&
					strings.Contains(err.Error(), pw) {
					t.Fatalf("ParseURL's error carries the password %q: %v", pw, err)
				}
			}
		} else if opts == nil {
			t.Fatalf("ParseURL(%q) = nil, nil", raw)
		}
		env := map[string]string{"REDIS_HOST": "127.0.0.1", "REDIS_PORT": port, "REDIS_DB": db, "REDIS_PASSWORD": "pw-" + raw}
		opts, err = coordredis.FromLookup(func(k string) string { return env[k] })
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("FromLookup(port %q, db %q) = %v, which does not wrap ErrInvalid", port, db, err)
			}
			if len(raw) >= 6 && strings.Contains(err.Error(), "pw-"+raw) {
				t.Fatalf("FromLookup's error carries the password: %v", err)
			}
		} else if opts.DB < 0 {
			t.Fatalf("FromLookup(db %q) gave DB %d", db, opts.DB)
		}
	})
}
