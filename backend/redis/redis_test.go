package redis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/redistest"
	"github.com/cgn-bot/coord/internal/secret"
)

// server is a Redis the tests run on: a miniredis or a real redis-server.
type server struct {
	name string
	opts func() *goredis.Options
}

// servers returns a miniredis and, when available, a real redis-server,
// both for the whole test.
func servers(t *testing.T) []server {
	t.Helper()
	m := miniredis.RunT(t)
	m.ClockTTL(true)
	out := []server{{"miniredis", func() *goredis.Options { return &goredis.Options{Addr: m.Addr()} }}}
	srv := redistest.Start(t)
	return append(out, server{"redis-server", srv.Options})
}

// forEachServer runs fn as a subtest on each server.
func forEachServer(t *testing.T, fn func(t *testing.T, s server)) {
	for _, s := range servers(t) {
		t.Run(s.name, func(t *testing.T) { fn(t, s) })
	}
}

// rawClient returns a plain go-redis client, closed at cleanup.
func rawClient(t *testing.T, s server) *goredis.Client {
	c := goredis.NewClient(s.opts())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// backendOn returns a Backend on a new client of s with opts (nil:
// defaults), both closed at cleanup.
func backendOn(t *testing.T, s server, opts *coordredis.Options) *coordredis.Backend {
	t.Helper()
	c := goredis.NewClient(s.opts())
	b, err := coordredis.New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = b.Close(context.Background())
		_ = c.Close()
	})
	return b
}

func eventually(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type rec[T any] struct {
	mu    sync.Mutex
	items []T
}

func (r *rec[T]) add(v T) { r.mu.Lock(); r.items = append(r.items, v); r.mu.Unlock() }
func (r *rec[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.items...)
}

// TestWireToNode: what the backend publishes is the Node design's JSON,
// read by a plain go-redis subscriber.
func TestWireToNode(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, &coordredis.Options{InstanceID: "go-1"})
		ps := rawClient(t, s).Subscribe(ctx, "cgn:cache:invalidate", "cgn:cache:invalidate:pattern", "cgn:shard:event")
		defer ps.Close()
		for range 3 {
			if _, err := ps.Receive(ctx); err != nil {
				t.Fatal(err)
			}
		}
		before := time.Now().UnixMilli()
		if err := b.Invalidator().Invalidate(ctx, "user:123:profile", map[string]any{"reason": "update"}); err != nil {
			t.Fatal(err)
		}
		if err := b.Invalidator().InvalidatePattern(ctx, "user:*", nil); err != nil {
			t.Fatal(err)
		}
		if err := b.Events().Publish(ctx, "shard.rebalance", map[string]any{"shard": 3, "id": int64(1234567890123456789)}); err != nil {
			t.Fatal(err)
		}
		type msg struct {
			InstanceID string          `json:"instanceId"`
			CacheKey   *string         `json:"cacheKey"`
			Metadata   json.RawMessage `json:"metadata"`
			Event      *string         `json:"event"`
			Payload    json.RawMessage `json:"payload"`
			Timestamp  int64           `json:"timestamp"`
		}
		got := map[string]msg{}
		for range 3 {
			m, err := ps.ReceiveMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var v msg
			dec := json.NewDecoder(strings.NewReader(m.Payload))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("%s: %q is not the Node format: %v", m.Channel, m.Payload, err)
			}
			if v.InstanceID != "go-1" || v.Timestamp < before || v.Timestamp > time.Now().UnixMilli() {
				t.Errorf("%s: %q: wrong instanceId or timestamp", m.Channel, m.Payload)
			}
			got[m.Channel] = v
		}
		if v := got["cgn:cache:invalidate"]; v.CacheKey == nil || *v.CacheKey != "user:123:profile" || string(v.Metadata) != `{"reason":"update"}` {
			t.Errorf("invalidation = %+v", v)
		}
		if v := got["cgn:cache:invalidate:pattern"]; v.CacheKey == nil || *v.CacheKey != "user:*" || string(v.Metadata) != "{}" { // nil metadata goes as {} (docs/WIRE.md)
			t.Errorf("pattern invalidation = %+v", v)
		}
		if v := got["cgn:shard:event"]; v.Event == nil || *v.Event != "shard.rebalance" || string(v.Payload) != `{"id":1234567890123456789,"shard":3}` {
			t.Errorf("event = %+v", v)
		}
	})
}

// TestWireFromNode: messages a plain go-redis publisher sends in the Node
// design's JSON reach the backend's subscribers; its own ID is filtered.
func TestWireFromNode(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, &coordredis.Options{InstanceID: "go-1"})
		var invs rec[coord.Invalidation]
		var evs rec[coord.Event]
		if _, err := b.Invalidator().Subscribe(ctx, invs.add); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Events().Subscribe(ctx, "cache.warm", evs.add); err != nil {
			t.Fatal(err)
		}
		pub := rawClient(t, s)
		send := func(ch, payload string) {
			t.Helper()
			if err := pub.Publish(ctx, ch, payload).Err(); err != nil {
				t.Fatal(err)
			}
		}
		send("cgn:cache:invalidate", `{"instanceId":"bot-12345-1234567890-abc","cacheKey":"user:123:profile","metadata":{"reason":"update"},"timestamp":1703174400000}`)
		send("cgn:cache:invalidate", `{"instanceId":"go-1","cacheKey":"mine","metadata":{},"timestamp":1703174400000}`)
		send("cgn:cache:invalidate:pattern", `{"instanceId":"bot-12345-1234567890-abc","cacheKey":"guild:*:config","metadata":{},"timestamp":1703174400001}`)
		send("cgn:shard:event", `{"instanceId":"bot-12345-1234567890-abc","event":"cache.warm","payload":{"shard":2},"timestamp":1703174400002}`)
		send("cgn:shard:event", `{"instanceId":"bot-12345-1234567890-abc","event":"other","payload":1,"timestamp":1703174400002}`)
		send("cgn:cache:invalidate", `{"instanceId":"bot-12345-1234567890-abc","cacheKey":"last","timestamp":1703174400003}`)
		eventually(t, 3*time.Second, func() bool { return len(invs.all()) == 3 && len(evs.all()) == 1 }, "deliveries")
		got := invs.all()
		if got[0].Kind != coord.KeyInvalidation || got[0].Key != "user:123:profile" || got[0].InstanceID != "bot-12345-1234567890-abc" ||
			string(got[0].Metadata) != `{"reason":"update"}` || !got[0].Timestamp.Equal(time.UnixMilli(1703174400000)) {
			t.Errorf("key invalidation = %+v", got[0])
		}
		if got[1].Kind != coord.PatternInvalidation || got[1].Key != "guild:*:config" || !got[1].Matches("guild:7:config") {
			t.Errorf("pattern invalidation = %+v", got[1])
		}
		if got[2].Key != "last" {
			t.Errorf("third invalidation = %+v (own message delivered?)", got[2])
		}
		e := evs.all()[0]
		if e.Topic != "cache.warm" || string(e.Payload) != `{"shard":2}` || !e.Timestamp.Equal(time.UnixMilli(1703174400002)) {
			t.Errorf("event = %+v", e)
		}
		send("cgn:shard:event", `{"event":"cache.warm","payload":1}`)
		send("cgn:cache:invalidate", `{"instanceId":"x","cacheKey":"a\u0000b","timestamp":1}`)
		send("cgn:cache:invalidate", `{"instanceId":"x","cacheKey":"k","timestamp":"soon"}`)
		eventually(t, 3*time.Second, func() bool {
			return b.Events().Stats().Malformed == 1 && b.Invalidator().Stats().Malformed == 2
		}, "malformed messages counted")
	})
}

// TestNamesCannotEscape: braces, glob metacharacters, spaces and percent
// signs in names never change a key's hash tag or reach another key.
func TestNamesCannotEscape(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, &coordredis.Options{Prefix: "esc:"})
		names := []string{"a}b", "{a}", "a", "a%7Db", "*", "?", "[a-z]", "x y", "a\\b", "}{", "%"}
		for _, n := range names {
			if _, err := b.Locker().Acquire(ctx, n, coord.WithTTL(time.Minute)); err != nil {
				t.Fatalf("Acquire(%q): %v", n, err)
			}
		}
		keys, err := rawClient(t, s).Keys(ctx, "esc:lock:*").Result() // the test may use KEYS; the backend never does
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 2*len(names) {
			t.Fatalf("%d keys for %d leases: %q", len(keys), len(names), keys)
		}
		for _, k := range keys {
			open := strings.IndexByte(k, '{')
			end := strings.IndexByte(k[open+1:], '}')
			tag := k[open+1 : open+1+end]
			rest := k[open+1+end+1:]
			if strings.ContainsAny(tag, "{}*?[] \\") || (rest != "" && rest != ":fence") || strings.ContainsAny(rest, "{}") {
				t.Errorf("key %q: tag %q or rest %q escaped the layout", k, tag, rest)
			}
		}
		for _, n := range names {
			locked, err := b.Locker().Locked(ctx, n)
			if err != nil || !locked {
				t.Errorf("Locked(%q) = %v, %v", n, locked, err)
			}
		}
	})
}

// TestTokenNeverStored: no key or value holds a session token in clear.
func TestTokenNeverStored(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, &coordredis.Options{Prefix: "tok:"})
		sess, err := b.Sessions().Create(ctx, "u", map[string]any{"k": "v"})
		if err != nil {
			t.Fatal(err)
		}
		raw := rawClient(t, s)
		secretPart := sess.ID[len(secret.SessionTokenPrefix):]
		for k, err := range b.Scan(ctx, "tok:*") {
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(k, secretPart) {
				t.Errorf("key %q holds the token", k)
			}
			dump := fmt.Sprint(raw.Do(ctx, "DUMP", k).Val())
			if strings.Contains(dump, secretPart) {
				t.Errorf("value of %q holds the token", k)
			}
		}
	})
}

// TestMalformedStoredSession: data in Redis that fails validation gives
// ErrInvalid, never a panic.
func TestMalformedStoredSession(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, &coordredis.Options{Prefix: "bad:"})
		raw := rawClient(t, s)
		meta := func(kv ...string) map[string]any {
			// Live until 2286, so that only the malformation is judged.
			m := map[string]any{"_u": "u", "_c": "1", "_a": "1", "_e": "9999999999999", "_x": "0", "_i": "3600000"}
			for i := 0; i < len(kv); i += 2 {
				if kv[i+1] == "<none>" {
					delete(m, kv[i])
					continue
				}
				m[kv[i]] = kv[i+1]
			}
			return m
		}
		cases := map[string]struct {
			fields map[string]any
			script bool // the scripts that read meta refuse it too
		}{
			"no meta":        {map[string]any{"d:a": "1"}, true},
			"bad time":       {meta("_c", "yesterday"), false},
			"bad user":       {meta("_u", ""), false},
			"bad JSON":       {meta("d:a", "{nope"), false},
			"unknown field":  {meta("zzz", "1"), false},
			"bad data key":   {meta("d:", "1"), false},
			"negative time":  {meta("_c", "-5"), false},
			"bad idle":       {meta("_i", "soon"), true},
			"missing idle":   {meta("_i", "<none>"), true},
			"bad deadline":   {meta("_x", "never"), true},
			"bad expiry":     {meta("_e", "x"), false},
			"missing expiry": {meta("_e", "<none>"), false},
		}
		for name, c := range cases {
			token := secret.SessionToken()
			key := "bad:{s}:s:" + secret.Handle(token)
			if err := raw.HSet(ctx, key, c.fields).Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Sessions().Get(ctx, token); !errors.Is(err, coord.ErrInvalid) {
				t.Errorf("%s: Get = %v, want ErrInvalid", name, err)
			}
			if c.script {
				if _, err := b.Sessions().Touch(ctx, token); !errors.Is(err, coord.ErrInvalid) {
					t.Errorf("%s: Touch = %v, want ErrInvalid", name, err)
				}
				if err := b.Sessions().Extend(ctx, token, time.Hour); !errors.Is(err, coord.ErrInvalid) && name != "bad idle" && name != "missing idle" {
					t.Errorf("%s: Extend = %v, want ErrInvalid", name, err)
				}
			}
			if err := b.Sessions().Delete(ctx, token); err != nil {
				t.Errorf("%s: Delete = %v", name, err)
			}
			if n, err := raw.Exists(ctx, key).Result(); err != nil || n != 0 {
				t.Errorf("%s: Delete left the malformed session", name)
			}
		}
		// A foreign index entry that does not fit is skipped.
		raw.ZAdd(ctx, "bad:{s}:byuser", goredis.Z{Member: "v\x00not-a-handle"})
		if list, err := b.Sessions().ByUser(ctx, "v"); err != nil || len(list) != 0 {
			t.Errorf("ByUser over a foreign index entry = %d, %v", len(list), err)
		}
	})
}

// TestFenceSurvivesDataLoss: after the server loses its data, fences
// still increase.
func TestFenceSurvivesDataLoss(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, nil)
		var last int64
		for i := range 3 {
			l, err := b.Locker().Acquire(ctx, "fence")
			if err != nil {
				t.Fatal(err)
			}
			if l.Fence() <= last {
				t.Fatalf("round %d: fence %d not above %d", i, l.Fence(), last)
			}
			last = l.Fence()
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := rawClient(t, s).FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestJSONAndScan(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, nil)
		type doc struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		}
		for i := range 250 {
			if err := b.SetJSON(ctx, fmt.Sprintf("app:doc:%d", i), doc{ID: int64(i) << 40, Name: "n"}, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		var d doc
		if err := b.GetJSON(ctx, "app:doc:7", &d); err != nil || d.ID != 7<<40 {
			t.Fatalf("GetJSON = %+v, %v", d, err)
		}
		if err := b.GetJSON(ctx, "app:none", &d); !errors.Is(err, coord.ErrNotFound) {
			t.Errorf("GetJSON of a missing key = %v", err)
		}
		rawClient(t, s).Set(ctx, "app:text", "not json", 0)
		if err := b.GetJSON(ctx, "app:text", &d); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("GetJSON of a non-JSON value = %v", err)
		}
		if err := b.SetJSON(ctx, "app:bad", func() {}, 0); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("SetJSON of a func = %v", err)
		}
		seen := map[string]bool{}
		for k, err := range b.Scan(ctx, "app:doc:*") {
			if err != nil {
				t.Fatal(err)
			}
			seen[k] = true
		}
		if len(seen) != 250 {
			t.Errorf("Scan found %d keys, want 250", len(seen))
		}
		n := 0
		for range b.Scan(ctx, "app:doc:*") {
			n++
			if n == 3 {
				break
			}
		}
	})
}

func TestAs(t *testing.T) {
	m := miniredis.RunT(t)
	c := goredis.NewClient(&goredis.Options{Addr: m.Addr()})
	defer c.Close()
	b, err := coordredis.New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	var uc goredis.UniversalClient
	if !coord.As(b, &uc) || uc != c {
		t.Errorf("As(*goredis.UniversalClient) did not give the client")
	}
	uc = nil
	if !coord.As(b.Locker(), &uc) || uc != c {
		t.Errorf("As through the Locker did not give the client")
	}
	var s string
	if coord.As(b, &s) {
		t.Errorf("As filled a *string")
	}
	if b.Client() != c {
		t.Errorf("Client() is not the client")
	}
}

func TestOptions(t *testing.T) {
	m := miniredis.RunT(t)
	c := goredis.NewClient(&goredis.Options{Addr: m.Addr()})
	defer c.Close()
	if _, err := coordredis.New(nil, nil); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("New(nil) = %v", err)
	}
	for _, o := range []*coordredis.Options{
		{Prefix: "a{b"}, {Prefix: "a}"}, {Prefix: "a\nb"}, {InstanceID: "a\x00"},
		{QueueSize: -1}, {LockDefaults: []coord.LockOption{coord.WithTTL(0)}},
		{Session: coord.SessionOptions{IdleTTL: -time.Second}},
	} {
		if _, err := coordredis.New(c, o); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("New(%+v) = %v, want ErrInvalid", o, err)
		}
	}
	b1, err := coordredis.New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := coordredis.New(c, nil)
	if !strings.HasPrefix(b1.InstanceID(), "bot-") || b1.InstanceID() == b2.InstanceID() {
		t.Errorf("instance IDs %q, %q", b1.InstanceID(), b2.InstanceID())
	}
	_ = b1.Close(t.Context())
	_ = b2.Close(t.Context())
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Errorf("Close closed the client: %v", err)
	}
}

func TestParseURL(t *testing.T) {
	good := map[string]func(*goredis.Options) bool{
		"redis://localhost:6380/2":             func(o *goredis.Options) bool { return o.Addr == "localhost:6380" && o.DB == 2 },
		"redis://:s3cret@h/0":                  func(o *goredis.Options) bool { return o.Password == "s3cret" && o.Addr == "h:6379" },
		"redis://alice:s3cret@h:1/0":           func(o *goredis.Options) bool { return o.Username == "alice" && o.Password == "s3cret" },
		"rediss://h:6390":                      func(o *goredis.Options) bool { return o.TLSConfig != nil && o.TLSConfig.ServerName == "h" },
		"redis://h?dial_timeout=2s&protocol=2": func(o *goredis.Options) bool { return o.DialTimeout == 2*time.Second && o.Protocol == 2 },
	}
	for u, ok := range good {
		o, err := coordredis.ParseURL(u)
		if err != nil || !ok(o) {
			t.Errorf("ParseURL(%q) = %+v, %v", u, o, err)
		}
	}
	for _, u := range []string{
		"http://h", "redis://h?bogus=1", "redis://:hunter2@h/notadb", "redis://:hunter2@h?bogus=hunter2",
		"redis://us er:hunter2@h\x7f/0", "redis://:hunter2@[::1/0", "",
	} {
		_, err := coordredis.ParseURL(u)
		if !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("ParseURL(%q) = %v, want ErrInvalid", u, err)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseURL(%q) error %q holds the password", u, err)
		}
	}
}

func TestFromLookup(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if _, err := coordredis.FromLookup(env(nil)); !errors.Is(err, coordredis.ErrNotConfigured) {
		t.Errorf("empty env: %v", err)
	}
	o, err := coordredis.FromLookup(env(map[string]string{"REDIS_URL": "redis://u:p@h:7/3", "REDIS_HOST": "ignored"}))
	if err != nil || o.Addr != "h:7" || o.DB != 3 || o.Username != "u" {
		t.Errorf("REDIS_URL: %+v, %v", o, err)
	}
	o, err = coordredis.FromLookup(env(map[string]string{"REDIS_HOST": "10.0.0.1", "REDIS_PASSWORD": "pw", "REDIS_DB": "4"}))
	if err != nil || o.Addr != "10.0.0.1:6379" || o.Password != "pw" || o.DB != 4 {
		t.Errorf("REDIS_HOST: %+v, %v", o, err)
	}
	for _, m := range []map[string]string{
		{"REDIS_HOST": "h", "REDIS_PORT": "x"}, {"REDIS_HOST": "h", "REDIS_PORT": "70000"},
		{"REDIS_HOST": "h", "REDIS_DB": "-1"}, {"REDIS_URL": "redis://h?nope=1"},
	} {
		if _, err := coordredis.FromLookup(env(m)); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%v: %v, want ErrInvalid", m, err)
		}
	}
}

func TestConnectAuth(t *testing.T) {
	const pw = "correct-horse-battery"
	for name, opt := range map[string]redistest.Option{
		"requirepass": redistest.WithPassword(pw),
		"ACL user":    redistest.WithACLUser("alice", pw),
	} {
		t.Run(name, func(t *testing.T) {
			srv := redistest.Start(t, opt)
			good, err := coordredis.NewClient(srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			defer good.Close()
			if err := coordredis.Connect(t.Context(), good); err != nil {
				t.Fatalf("Connect with the right credentials: %v", err)
			}
			o := srv.Options()
			o.Password = "wrong-" + pw
			bad := goredis.NewClient(o)
			defer bad.Close()
			start := time.Now()
			err = coordredis.Connect(t.Context(), bad)
			if !errors.Is(err, coordredis.ErrAuth) || !errors.Is(err, coord.ErrUnavailable) {
				t.Fatalf("Connect with a wrong password: %v, want ErrAuth", err)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("the error %q holds the password", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("a refused AUTH was retried for %v", d)
			}
		})
	}
}

func TestConnectTLS(t *testing.T) {
	srv := redistest.Start(t, redistest.WithTLS())
	connect := func(o *goredis.Options) error {
		c := goredis.NewClient(o)
		defer c.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		return coordredis.Connect(ctx, c)
	}
	o, err := coordredis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if err := connect(o); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Connect to a server whose CA is not trusted = %v, want a certificate error", err)
	}
	o, err = coordredis.ParseURL(srv.URL() + "?tls_ca_file=" + srv.CAFile() + "&dial_timeout=2s")
	if err != nil {
		t.Fatal(err)
	}
	if err := connect(o); err != nil {
		t.Fatalf("Connect over TLS with tls_ca_file: %v", err)
	}
	env := map[string]string{"REDIS_URL": srv.URL(), "REDIS_TLS_CA_FILE": srv.CAFile()}
	o, err = coordredis.FromLookup(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := connect(o); err != nil {
		t.Fatalf("Connect over TLS from the environment: %v", err)
	}
	host, port, _ := strings.Cut(srv.Addr(), ":")
	env = map[string]string{"REDIS_HOST": host, "REDIS_PORT": port, "REDIS_TLS": "true", "REDIS_TLS_CA_FILE": srv.CAFile()}
	if o, err = coordredis.FromLookup(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := connect(o); err != nil {
		t.Fatalf("Connect over TLS from REDIS_HOST and REDIS_TLS: %v", err)
	}
	for _, u := range []string{"redis://h?tls_ca_file=/nonexistent", srv.URL() + "?tls_ca_file=/nonexistent", srv.URL() + "?tls_ca_file=" + "/etc/hostname"} {
		if _, err := coordredis.ParseURL(u); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("ParseURL(%q) = %v, want ErrInvalid", u, err)
		}
	}
}

func TestConnectBoundedByContext(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill(t)
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := coordredis.Connect(ctx, c)
	if !errors.Is(err, coord.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Connect to a dead server = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Connect with a 300ms context took %v", d)
	}
	// And it waits for a server that comes up meanwhile.
	done := make(chan error, 1)
	go func() { done <- coordredis.Connect(t.Context(), c) }()
	time.Sleep(150 * time.Millisecond) // the first tries fail
	srv.Restart(t)
	if err := <-done; err != nil {
		t.Errorf("Connect while the server starts: %v", err)
	}
}

func TestStateChanges(t *testing.T) {
	srv := redistest.Start(t)
	var mu sync.Mutex
	var changes []coordredis.StateChange
	o := srv.Options()
	o.MaxRetries = -1
	c := goredis.NewClient(o)
	defer c.Close()
	b, err := coordredis.New(c, &coordredis.Options{
		HealthInterval: 200 * time.Millisecond,
		OnStateChange: func(sc coordredis.StateChange) {
			mu.Lock()
			changes = append(changes, sc)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	ctx := t.Context()
	if b.State() != coord.Disconnected {
		t.Errorf("State before any command = %v", b.State())
	}
	if h := b.Health(ctx); h.Status != coord.Healthy || b.State() != coord.Connected {
		t.Fatalf("Health = %+v", h)
	}
	var purges rec[coord.Invalidation]
	if _, err := b.Invalidator().Subscribe(ctx, purges.add); err != nil {
		t.Fatal(err)
	}
	srv.Kill(t)
	if h := b.Health(ctx); h.Status != coord.Unhealthy || b.State() != coord.Reconnecting {
		t.Errorf("Health with the server down = %+v, state %v", h, b.State())
	}
	eventually(t, 5*time.Second, func() bool { return b.SubscriberState() == coord.Reconnecting }, "subscriber reconnecting")
	srv.Restart(t)
	eventually(t, 10*time.Second, func() bool { return b.Health(ctx).Status == coord.Healthy }, "healthy again")
	eventually(t, 5*time.Second, func() bool { return len(purges.all()) > 0 }, "a purge after the restart")
	if p := purges.all()[0]; p.Kind != coord.PurgeAll || p.Reason != "reconnect" {
		t.Errorf("after a restart got %+v", p)
	}
	mu.Lock()
	defer mu.Unlock()
	var sawCmd, sawSub bool
	for _, sc := range changes {
		if sc.To == coord.Reconnecting {
			if sc.Subscriber {
				sawSub = true
			} else {
				sawCmd = true
			}
		}
	}
	if !sawCmd || !sawSub {
		t.Errorf("state changes %+v miss a reconnecting state", changes)
	}
}

// TestPausedServerSubscriber: a subscriber connection that stops
// answering (SIGSTOP) is replaced, and invalidation subscribers purge.
func TestPausedServerSubscriber(t *testing.T) {
	srv := redistest.Start(t)
	o := srv.Options()
	c := goredis.NewClient(o)
	defer c.Close()
	b, err := coordredis.New(c, &coordredis.Options{HealthInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	ctx := t.Context()
	var got rec[coord.Invalidation]
	if _, err := b.Invalidator().Subscribe(ctx, got.add); err != nil {
		t.Fatal(err)
	}
	srv.Pause(t)
	eventually(t, 5*time.Second, func() bool { return b.SubscriberState() == coord.Reconnecting }, "a silent subscriber is noticed")
	srv.Resume(t)
	eventually(t, 10*time.Second, func() bool {
		for _, i := range got.all() {
			if i.Kind == coord.PurgeAll {
				return true
			}
		}
		return false
	}, "a purge after the pause")
	eventually(t, 5*time.Second, func() bool { return b.SubscriberState() == coord.Connected }, "subscriber connected")
}

// TestLeaseLostWhileServerPaused: when renewals cannot reach the server,
// Done closes once the local deadline (taken before the acquire was sent)
// passes, and the lease is not renewed afterwards.
func TestLeaseLostWhileServerPaused(t *testing.T) {
	srv := redistest.Start(t)
	o := srv.Options()
	o.ReadTimeout = 200 * time.Millisecond
	o.MaxRetries = -1
	c := goredis.NewClient(o)
	defer c.Close()
	b, err := coordredis.New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	ctx := t.Context()
	const ttl = 600 * time.Millisecond
	start := time.Now()
	l, err := b.Locker().Acquire(ctx, "paused", coord.WithTTL(ttl), coord.WithAutoRenew())
	if err != nil {
		t.Fatal(err)
	}
	srv.Pause(t)
	resumed := false
	defer func() {
		if !resumed {
			srv.Resume(t)
		}
	}()
	select {
	case <-l.Done():
		if d := time.Since(start); d < ttl-50*time.Millisecond {
			t.Errorf("Done closed %v after the acquire, before the %v lease could have run out", d, ttl)
		}
	case <-time.After(ttl + 2*time.Second):
		t.Fatal("Done not closed 2s after the lease ran out with the server paused")
	}
	if len(b.Locker().Held()) != 0 {
		t.Errorf("a lost lease is still in Held")
	}
	srv.Resume(t)
	resumed = true
	// The lease expired in Redis and is not renewed again.
	eventually(t, 5*time.Second, func() bool {
		locked, err := b.Locker().Locked(ctx, "paused")
		return err == nil && !locked
	}, "the lost lease expires and stays expired")
	if err := l.Release(ctx); !errors.Is(err, coord.ErrExpired) {
		t.Errorf("Release of the lost lease = %v, want ErrExpired", err)
	}
}

// TestHandoffToWaiter: a lease released while another instance waits is
// reserved for the waiter: the releaser's own next try does not win it.
func TestHandoffToWaiter(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		a := backendOn(t, s, &coordredis.Options{Prefix: "ho:"})
		b := backendOn(t, s, &coordredis.Options{Prefix: "ho:"})
		raw := rawClient(t, s)
		for round := range 3 {
			res := fmt.Sprintf("handoff-%d", round) // no subscription left from an earlier round
			l, err := a.Locker().Acquire(ctx, res, coord.WithTTL(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			type result struct {
				l   coord.Lock
				err error
			}
			got := make(chan result, 1)
			go func() {
				l2, err := b.Locker().Acquire(ctx, res, coord.WithTTL(10*time.Second), coord.WithRetry(5, 5*time.Second))
				got <- result{l2, err}
			}()
			eventually(t, 2*time.Second, func() bool {
				// The waiter has tried once and subscribed when a raw
				// PUBLISH on its wake channel reaches a subscriber.
				n, _ := raw.Publish(ctx, "ho:lock:{"+res+"}:wake", "probe").Result()
				return n > 0
			}, "the waiter subscribes")
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Locker().Acquire(ctx, res, coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
				t.Fatalf("round %d: the releaser's next try = %v, want ErrNotAcquired (reserved for the waiter)", round, err)
			}
			select {
			case r := <-got:
				if r.err != nil {
					t.Fatalf("round %d: waiter: %v", round, r.err)
				}
				if err := r.l.Release(ctx); err != nil {
					t.Fatal(err)
				}
			case <-time.After(3 * time.Second):
				t.Fatalf("round %d: the waiter did not get the lease", round)
			}
		}
	})
}

// TestHandoffMarker: a reserved lease is no lease for Locked,
// ForceRelease, and a stale holder, and a waiter takes it.
func TestHandoffMarker(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, &coordredis.Options{Prefix: "hm:"})
		raw := rawClient(t, s)
		stale, err := b.Locker().Acquire(ctx, "m", coord.WithTTL(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		raw.Set(ctx, "hm:lock:{m}", "\x00handoff", 10*time.Second)
		if locked, err := b.Locker().Locked(ctx, "m"); err != nil || locked {
			t.Errorf("Locked on a reserved lease = %v, %v", locked, err)
		}
		if err := stale.Extend(ctx, time.Minute); !errors.Is(err, coord.ErrExpired) {
			t.Errorf("Extend of a lease now reserved = %v, want ErrExpired", err)
		}
		if err := stale.Release(ctx); !errors.Is(err, coord.ErrExpired) {
			t.Errorf("Release of a lease now reserved = %v, want ErrExpired", err)
		}
		if _, err := b.Locker().Acquire(ctx, "m", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
			t.Errorf("a newcomer took a reserved lease: %v", err)
		}
		l, err := b.Locker().Acquire(ctx, "m", coord.WithRetry(3, 10*time.Millisecond))
		if err != nil {
			t.Fatalf("a waiter did not take a reserved lease: %v", err)
		}
		if l.Fence() <= stale.Fence() {
			t.Errorf("fence %d after a handoff is not above %d", l.Fence(), stale.Fence())
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		raw.Set(ctx, "hm:lock:{m}", "\x00handoff", 10*time.Second)
		if ok, err := b.Locker().ForceRelease(ctx, "m"); err != nil || ok {
			t.Errorf("ForceRelease of a reserved lease = %v, %v, want false", ok, err)
		}
		if n, _ := raw.Exists(ctx, "hm:lock:{m}").Result(); n != 0 {
			t.Errorf("ForceRelease left the reservation")
		}
	})
}

// TestOrphanLeaseReleased: an acquire whose reply is lost to a timeout
// while the server is stalled, and which the server runs on resuming,
// leaves no lease behind for its TTL: the instance releases it.
func TestOrphanLeaseReleased(t *testing.T) {
	srv := redistest.Start(t)
	o := srv.Options()
	o.ReadTimeout = 200 * time.Millisecond
	o.MaxRetries = -1
	c := goredis.NewClient(o)
	defer c.Close()
	b, err := coordredis.New(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	ctx := t.Context()
	// Load the script first, so the stalled call is the acquire itself.
	l, err := b.Locker().Acquire(ctx, "warm")
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Release(ctx)
	srv.Pause(t)
	_, err = b.Locker().Acquire(ctx, "orphan", coord.WithTTL(30*time.Second), coord.WithRetry(0, 0))
	srv.Resume(t)
	if !errors.Is(err, coord.ErrUnavailable) {
		t.Fatalf("Acquire on a stalled server = %v, want ErrUnavailable", err)
	}
	eventually(t, 5*time.Second, func() bool {
		locked, err := b.Locker().Locked(ctx, "orphan")
		return err == nil && !locked
	}, "the lease of the lost reply is released (TTL 30s)")
	if _, err := b.Locker().Acquire(ctx, "orphan", coord.WithRetry(0, 0)); err != nil {
		t.Errorf("Acquire after the orphan was released: %v", err)
	}
}

// TestManyFields: sessions with thousands of fields are written and
// merged in chunks (Lua's stack bounds one call's arguments).
func TestManyFields(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, &coordredis.Options{Prefix: "many:"})
		data := map[string]any{}
		for i := range 3001 {
			data[fmt.Sprintf("k%d", i)] = i
		}
		sess, err := b.Sessions().Create(ctx, "u", data)
		if err != nil {
			t.Fatal(err)
		}
		upd := map[string]any{}
		for i := range 2500 {
			upd[fmt.Sprintf("k%d", i)] = nil
		}
		for i := range 1200 {
			upd[fmt.Sprintf("n%d", i)] = "x"
		}
		if err := b.Sessions().Update(ctx, sess.ID, upd); err != nil {
			t.Fatal(err)
		}
		got, err := b.Sessions().Get(ctx, sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Data) != 501+1200 || string(got.Data["k3000"]) != "3000" || string(got.Data["n7"]) != `"x"` {
			t.Errorf("after the merge: %d fields", len(got.Data))
		}
	})
}

// TestLockReplicas: with LockReplicas, a lease no replica acknowledged is
// given up, and one the replica has is granted.
func TestLockReplicas(t *testing.T) {
	t.Run("no replica", func(t *testing.T) {
		srv := redistest.Start(t)
		c := goredis.NewClient(srv.Options())
		defer c.Close()
		b, err := coordredis.New(c, &coordredis.Options{LockReplicas: 1, LockReplicaTimeout: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(context.Background())
		ctx := t.Context()
		if _, err := b.Locker().Acquire(ctx, "r", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrUnavailable) {
			t.Fatalf("Acquire without a replica = %v, want ErrUnavailable", err)
		}
		if locked, err := b.Locker().Locked(ctx, "r"); err != nil || locked {
			t.Errorf("the unreplicated lease was kept: Locked = %v, %v", locked, err)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		if testing.Short() {
			t.Skip("a Sentinel group takes seconds to form; skipped with -short")
		}
		g := redistest.StartSentinel(t)
		c := goredis.NewFailoverClient(g.FailoverOptions())
		defer c.Close()
		b, err := coordredis.New(c, &coordredis.Options{LockReplicas: 1, LockReplicaTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close(context.Background())
		ctx := t.Context()
		l, err := b.Locker().Acquire(ctx, "r", coord.WithRetry(0, 0))
		if err != nil {
			t.Fatalf("Acquire with a replica: %v", err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		// Flush the script cache: the pipeline must fall back to EVAL.
		c.ScriptFlush(ctx)
		if l, err = b.Locker().Acquire(ctx, "r2", coord.WithRetry(0, 0)); err != nil {
			t.Fatalf("Acquire after SCRIPT FLUSH: %v", err)
		}
		_ = l.Release(ctx)
	})
}
