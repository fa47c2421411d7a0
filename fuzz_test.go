package coord_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// The fuzz targets of this file check that everything that parses input
// from users or from the wire refuses what it must with an error wrapping
// coord.ErrInvalid and never panics. Seeds are here and in
// testdata/fuzz/<target>/; reliability/fuzz.sh runs each target for a
// short time.

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"", "a", "user:1", "{tag}:a}b{c", "a\nb", "a\r\nb", "nul\x00", "del\x7f", "\xff\xfe",
		"ключ:☃:名前", strings.Repeat("x", coord.MaxNameLen), strings.Repeat("x", coord.MaxNameLen+1), "glob*?[x]\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := coord.ValidateName("name", name)
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("ValidateName(%q) = %v, which does not wrap ErrInvalid", name, err)
			}
			return
		}
		if name == "" || len(name) > coord.MaxNameLen || !utf8.ValidString(name) {
			t.Fatalf("ValidateName accepted %q (%d bytes)", name, len(name))
		}
		for i := 0; i < len(name); i++ {
			if c := name[i]; c < 0x20 || c == 0x7f {
				t.Fatalf("ValidateName accepted %q with control byte %#x", name, c)
			}
		}
	})
}

func FuzzValidateGlob(f *testing.F) {
	for _, s := range []string{"*", "user:*", "a[bc]d", "a[^b]", "a\\[", "[]]", "x[a-z]*", "a\\\\", "", "a[bc", "[", "a\\",
		"x[\\]", "a\nb", "[^", "[\\", "\\[]"} {
		f.Add(s, "user:1")
	}
	f.Fuzz(func(t *testing.T, glob, s string) {
		err := coord.ValidateGlob(glob)
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("ValidateGlob(%q) = %v, which does not wrap ErrInvalid", glob, err)
			}
			return
		}
		if err := coord.ValidateName("glob", glob); err != nil {
			t.Fatalf("ValidateGlob accepted %q, which is not a valid name: %v", glob, err)
		}
		coord.MatchGlob(glob, s) // must not panic
	})
}

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

func FuzzEncodePayload(f *testing.F) {
	for _, s := range []string{`null`, `{"a":1}`, ` [1, 2 ,3] `, `"\u2028"`, `{"a":`, `1e999`, `123456789012345678901234567890`,
		"\xff", `{"a":1}{"b":2}`, ``, `"é😀"`, `{"a":{"b":{"c":[[[[]]]]}}}`} {
		f.Add([]byte(s), 0)
	}
	f.Add([]byte(`{"a":"bbbbbbbbbb"}`), 8)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		out, err := coord.EncodePayload(json.RawMessage(data), max)
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("EncodePayload(raw %q) = %v, which does not wrap ErrInvalid", data, err)
			}
		} else {
			if !json.Valid(out) {
				t.Fatalf("EncodePayload(raw %q) = %q, not valid JSON", data, out)
			}
			var want bytes.Buffer
			if err := json.Compact(&want, data); err != nil || !bytes.Equal(out, want.Bytes()) {
				t.Fatalf("EncodePayload(raw %q) = %q, want the compact form %q", data, out, want.Bytes())
			}
			if lim := max; lim > 0 && len(data) > lim {
				t.Fatalf("EncodePayload(raw %q, %d) accepted %d bytes", data, max, len(data))
			}
		}
		// Any Go string round-trips (invalid UTF-8 is replaced, as
		// encoding/json does).
		s := string(data)
		out, err = coord.EncodePayload(s, 0)
		if err != nil {
			t.Fatalf("EncodePayload(string %q) = %v", s, err)
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("EncodePayload(string %q) = %q, which does not decode: %v", s, out, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("EncodePayload(string %q) decodes to %q", s, back)
		}
		// Marshalled values (here a RawMessage inside a struct) come out
		// valid and compact without a second pass.
		if json.Valid(data) {
			out, err := coord.EncodePayload(struct {
				R json.RawMessage `json:"r"`
			}{data}, 0)
			if err != nil {
				t.Fatalf("EncodePayload(struct with raw %q) = %v", data, err)
			}
			var compact bytes.Buffer
			if !json.Valid(out) || json.Compact(&compact, out) != nil || !bytes.Equal(compact.Bytes(), out) {
				t.Fatalf("EncodePayload(struct with raw %q) = %q, not valid compact JSON", data, out)
			}
		}
	})
}

func FuzzEncodeData(f *testing.F) {
	f.Add("user", []byte(`{"id":123456789012345678}`), false)
	f.Add("k", []byte(`null`), true)
	f.Add("k", []byte(`null`), false)
	f.Add("", []byte(`1`), false)
	f.Add("a\nb", []byte(`1`), false)
	f.Add("k", []byte(`{`), true)
	f.Fuzz(func(t *testing.T, key string, value []byte, allowDelete bool) {
		data := map[string]any{key: json.RawMessage(value), "fixed": 1}
		sets, deletes, err := coord.EncodeData(data, allowDelete, 0)
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("EncodeData(%q: %q) = %v, which does not wrap ErrInvalid", key, value, err)
			}
			return
		}
		for k, v := range sets {
			if coord.ValidateName("key", k) != nil {
				t.Fatalf("EncodeData set invalid key %q", k)
			}
			if !json.Valid(v) || string(v) == "null" {
				t.Fatalf("EncodeData set %q to %q", k, v)
			}
		}
		if !allowDelete && len(deletes) > 0 {
			t.Fatalf("EncodeData returned deletes %q without allowDelete", deletes)
		}
		if _, ok := sets[key]; !ok && !(allowDelete && len(deletes) == 1 && deletes[0] == key) && key != "fixed" {
			if !bytes.Equal(bytes.TrimSpace(value), []byte("null")) {
				t.Fatalf("EncodeData dropped %q: %q", key, value)
			}
		}
	})
}

// FuzzSessionToken gives arbitrary strings as session tokens to a memory
// store that issued one session: only that session's exact token finds it;
// anything else is ErrInvalid (not a token's shape) or ErrNotFound.
func FuzzSessionToken(f *testing.F) {
	hub := memory.NewHub(nil)
	n := hub.NewNode(nil)
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

// foreignRig is a Redis backend on a miniredis, subscribed to every
// invalidation and to events on one topic, to which the fuzzer publishes
// raw messages as a foreign program would.
type foreignRig struct {
	m      *miniredis.Miniredis
	b      *coordredis.Backend
	client *goredis.Client

	mu     sync.Mutex
	invs   []coord.Invalidation
	events []coord.Event
	marker int
}

const foreignTopic = "fuzz-topic"

func newForeignRig(f *testing.F) *foreignRig {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		f.Fatal(err)
	}
	r := &foreignRig{m: m, client: goredis.NewClient(&goredis.Options{Addr: m.Addr()})}
	b, err := coordredis.New(r.client, &coordredis.Options{InstanceID: "fuzz-self"})
	if err != nil {
		f.Fatal(err)
	}
	r.b = b
	f.Cleanup(func() {
		_ = b.Close(context.Background())
		_ = r.client.Close()
		m.Close()
	})
	ctx := context.Background()
	if _, err := b.Invalidator().Subscribe(ctx, func(inv coord.Invalidation) {
		r.mu.Lock()
		r.invs = append(r.invs, inv)
		r.mu.Unlock()
	}, coord.WithQueueSize(1<<16)); err != nil {
		f.Fatal(err)
	}
	if _, err := b.Events().Subscribe(ctx, foreignTopic, func(e coord.Event) {
		r.mu.Lock()
		r.events = append(r.events, e)
		r.mu.Unlock()
	}, coord.WithQueueSize(1<<16)); err != nil {
		f.Fatal(err)
	}
	return r
}

// sync publishes a marker event and waits until it arrives: everything
// published before it has been dispatched by then.
func (r *foreignRig) sync(t *testing.T) {
	r.mu.Lock()
	r.marker++
	want := fmt.Sprintf(`{"marker":%d}`, r.marker)
	r.mu.Unlock()
	msg := fmt.Sprintf(`{"instanceId":"fuzz-marker","event":%q,"payload":%s,"timestamp":1}`, foreignTopic, want)
	r.m.Publish("cgn:shard:event", msg)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		for _, e := range r.events {
			if string(e.Payload) == want {
				r.mu.Unlock()
				return
			}
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("marker %s not delivered within 5s", want)
		}
		time.Sleep(time.Millisecond)
	}
}

// FuzzForeignMessage publishes raw bytes on the Redis backend's wire
// channels as another program would: each message is either decoded and
// delivered (with a valid key, glob or topic) or counted as malformed and
// dropped, and nothing panics.
func FuzzForeignMessage(f *testing.F) {
	for _, s := range []string{
		`{"instanceId":"other","cacheKey":"user:1","metadata":{"a":1},"timestamp":1700000000000}`,
		`{"instanceId":"other","cacheKey":"user:*","timestamp":1.7e12}`,
		`{"instanceId":"other","event":"fuzz-topic","payload":[1,2],"timestamp":null}`,
		`{"instanceId":"","cacheKey":"k"}`, `{"instanceId":"o","cacheKey":"a\nb"}`, `{"instanceId":"o","cacheKey":"[a"}`,
		`{"instanceId":"o","cacheKey":"k","timestamp":"x"}`, `{"instanceId":"o","cacheKey":"k","timestamp":1e300}`,
		`not json`, ``, `null`, `[]`, `{"instanceId":7}`, "\xff\xfe", `{"instanceId":"fuzz-self","cacheKey":"k"}`,
	} {
		for ch := range byte(3) {
			f.Add(ch, []byte(s))
		}
	}
	r := newForeignRig(f)
	channels := []string{"cgn:cache:invalidate", "cgn:cache:invalidate:pattern", "cgn:shard:event"}
	f.Fuzz(func(t *testing.T, ch byte, payload []byte) {
		channel := channels[int(ch)%len(channels)]
		is0, es0 := r.b.Invalidator().Stats(), r.b.Events().Stats()
		r.mu.Lock()
		ni, ne := len(r.invs), len(r.events)
		r.mu.Unlock()
		r.m.Publish(channel, string(payload))
		r.sync(t)
		is1, es1 := r.b.Invalidator().Stats(), r.b.Events().Stats()
		// Events are counted by what the handler saw: the backend counts
		// a delivery just after queueing it, so the marker's count may
		// lag behind its handler. Malformed messages and invalidations
		// were counted before the marker was dispatched.
		r.mu.Lock()
		foreignEvents := 0
		for _, e := range r.events[ne:] {
			if e.InstanceID != "fuzz-marker" {
				foreignEvents++
			}
		}
		r.mu.Unlock()
		counted := (is1.Malformed - is0.Malformed) + (is1.Received - is0.Received) +
			(es1.Malformed - es0.Malformed) + uint64(foreignEvents)
		if counted > 1 {
			t.Fatalf("one message on %s counted %d times: %+v -> %+v, %+v -> %+v, %d events", channel, counted, is0, is1, es0, es1, foreignEvents)
		}
		// Wait for the handler to have what was counted as received.
		deadline := time.Now().Add(5 * time.Second)
		for {
			r.mu.Lock()
			gotI := len(r.invs) - ni
			r.mu.Unlock()
			if uint64(gotI) >= is1.Received-is0.Received || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, inv := range r.invs[ni:] {
			switch inv.Kind {
			case coord.KeyInvalidation:
				if coord.ValidateName("key", inv.Key) != nil {
					t.Fatalf("delivered an invalidation of invalid key %q", inv.Key)
				}
			case coord.PatternInvalidation:
				if coord.ValidateGlob(inv.Key) != nil {
					t.Fatalf("delivered an invalidation of invalid glob %q", inv.Key)
				}
			case coord.PurgeAll:
				// A malformed invalidation is a gap: it purges.
				if inv.Reason != coord.ReasonMalformed {
					t.Fatalf("a foreign message made a PurgeAll %q", inv.Reason)
				}
				continue
			default:
				t.Fatalf("delivered invalidation kind %v from a foreign message", inv.Kind)
			}
			if inv.InstanceID == "" || inv.InstanceID == "fuzz-self" {
				t.Fatalf("delivered an invalidation from instance %q", inv.InstanceID)
			}
			if len(inv.Metadata) > 0 && !json.Valid(inv.Metadata) {
				t.Fatalf("delivered invalid metadata %q", inv.Metadata)
			}
		}
		for _, e := range r.events[ne:] {
			if e.Topic != foreignTopic || !json.Valid(e.Payload) || e.InstanceID == "" || e.InstanceID == "fuzz-self" {
				t.Fatalf("delivered a bad event %+v", e)
			}
		}
		// Keep memory bounded over a long run.
		r.invs, r.events = r.invs[:0], r.events[:0]
	})
}
