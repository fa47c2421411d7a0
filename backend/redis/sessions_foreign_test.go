package redis_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/secret"
)

// foreign writes session hashes straight into Redis, as another tool, a
// restore without TTLs or a migration would, in the layout of
// sessions.go (keys.go names the keys).
type foreign struct {
	t      *testing.T
	raw    *goredis.Client
	prefix string
}

func (f foreign) key(handle string) string { return f.prefix + "{s}:s:" + handle }

// now returns the server's clock in milliseconds.
func (f foreign) now() int64 {
	f.t.Helper()
	tm, err := f.raw.Time(context.Background()).Result()
	if err != nil {
		f.t.Fatal(err)
	}
	return tm.UnixMilli()
}

// meta returns the meta fields of a session of user u that expires at e
// with deadline x (0: none), as the scripts write them.
func meta(u string, e, x int64) map[string]string {
	return map[string]string{
		"_u": u, "_c": "1000", "_a": "1000", "_e": strconv.FormatInt(e, 10),
		"_x": strconv.FormatInt(x, 10), "_i": "3600000", "d:k": `"v"`,
	}
}

// write stores fields under a new token's key, without a TTL; indexed
// also adds the index entries Create would (expiry score e).
func (f foreign) write(fields map[string]string, indexed bool, e int64) (token, handle string) {
	f.t.Helper()
	ctx := context.Background()
	token = secret.SessionToken()
	handle = secret.Handle(token)
	if err := f.raw.HSet(ctx, f.key(handle), fields).Err(); err != nil {
		f.t.Fatal(err)
	}
	if indexed {
		m := fields["_u"] + "\x00" + handle
		p := f.prefix + "{s}:"
		f.raw.ZAdd(ctx, p+"exp", goredis.Z{Score: float64(e), Member: m})
		f.raw.ZAdd(ctx, p+"byuser", goredis.Z{Score: 0, Member: m})
		f.raw.ZAdd(ctx, p+"created", goredis.Z{Score: 1000, Member: m})
		f.raw.HIncrBy(ctx, p+"users", fields["_u"], 1)
	}
	return token, handle
}

// gone checks that the session's key and every index entry of user u's
// session handle are gone.
func (f foreign) gone(what, u, handle string) {
	f.t.Helper()
	ctx := context.Background()
	if n, err := f.raw.Exists(ctx, f.key(handle)).Result(); err != nil || n != 0 {
		f.t.Errorf("%s: the expired session's key is still there (%d, %v)", what, n, err)
	}
	m := u + "\x00" + handle
	p := f.prefix + "{s}:"
	for _, idx := range []string{"exp", "byuser", "created"} {
		if err := f.raw.ZScore(ctx, p+idx, m).Err(); !errors.Is(err, goredis.Nil) {
			f.t.Errorf("%s: the expired session is still in the %s index (%v)", what, idx, err)
		}
	}
	if n, err := f.raw.HGet(ctx, p+"users", u).Int64(); !errors.Is(err, goredis.Nil) {
		f.t.Errorf("%s: user %q still counts %d sessions (%v)", what, u, n, err)
	}
}

// sessionMethods calls each SessionStore method that takes a token or a
// handle on the session (token, handle) of user u, and returns what each
// gave, in a form the tests compare: "live", "not found", "invalid", or
// anything else.
var sessionMethods = map[string]func(ctx context.Context, st coord.SessionStore, u, token, handle string) error{
	"Get": func(ctx context.Context, st coord.SessionStore, _, token, _ string) error {
		_, err := st.Get(ctx, token)
		return err
	},
	"Exists": func(ctx context.Context, st coord.SessionStore, _, token, _ string) error {
		ok, err := st.Exists(ctx, token)
		if err == nil && !ok {
			return coord.ErrNotFound
		}
		return err
	},
	"Touch": func(ctx context.Context, st coord.SessionStore, _, token, _ string) error {
		_, err := st.Touch(ctx, token)
		return err
	},
	"Update": func(ctx context.Context, st coord.SessionStore, _, token, _ string) error {
		return st.Update(ctx, token, map[string]any{"n": 1})
	},
	"Update deleting": func(ctx context.Context, st coord.SessionStore, _, token, _ string) error {
		return st.Update(ctx, token, map[string]any{"k": nil})
	},
	"Extend": func(ctx context.Context, st coord.SessionStore, _, token, _ string) error {
		return st.Extend(ctx, token, time.Hour)
	},
	"Rotate": func(ctx context.Context, st coord.SessionStore, _, token, _ string) error {
		_, err := st.Rotate(ctx, token)
		return err
	},
	"Revoke": func(ctx context.Context, st coord.SessionStore, u, _, handle string) error {
		return st.Revoke(ctx, u, handle)
	},
	"ByUser": func(ctx context.Context, st coord.SessionStore, u, _, handle string) error {
		list, err := st.ByUser(ctx, u)
		if err != nil {
			return err
		}
		for _, s := range list {
			if s.Handle == handle {
				return nil
			}
		}
		return coord.ErrNotFound
	},
	"DeleteByUser": func(ctx context.Context, st coord.SessionStore, u, _, _ string) error {
		n, err := st.DeleteByUser(ctx, u)
		if err == nil && n == 0 {
			return coord.ErrNotFound
		}
		return err
	},
}

// TestExpiredStoredSession: a session hash whose recorded expiry or
// deadline has passed, with no TTL on its key (written by another tool,
// restored without TTLs), is not found by any method, is not revived,
// and is cleaned up with its index entries; Count and Stats do not count
// it, Delete is quiet about it, and Stats, Cleanup and Create, which prune
// the index, delete its key too.
func TestExpiredStoredSession(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		const prefix = "exp:"
		b := backendOn(t, s, &coordredis.Options{Prefix: prefix})
		st := b.Sessions()
		f := foreign{t, rawClient(t, s), prefix}
		now := f.now()
		// The index score of each is its expiry capped by its deadline,
		// as the scripts keep it.
		kinds := map[string]struct{ e, x int64 }{
			"expiry passed":             {now - time.Hour.Milliseconds(), 0},
			"expiry 1ms ago":            {now - 1, 0},
			"deadline passed":           {now + time.Hour.Milliseconds(), now - time.Second.Milliseconds()},
			"expiry long ago":           {1, 0},
			"expiry passed, deadline 0": {now - time.Minute.Milliseconds(), 0},
		}
		for kind, k := range kinds {
			score := k.e
			if k.x > 0 {
				score = min(k.e, k.x)
			}
			for _, indexed := range []bool{false, true} {
				for name, call := range sessionMethods {
					what := fmt.Sprintf("%s, indexed %v: %s", kind, indexed, name)
					u := "user-" + strings.ReplaceAll(kind, " ", "-")
					token, handle := f.write(meta(u, k.e, k.x), indexed, score)
					err := call(ctx, st, u, token, handle)
					if !errors.Is(err, coord.ErrNotFound) {
						t.Errorf("%s = %v, want ErrNotFound", what, err)
					}
					if !indexed && (name == "ByUser" || name == "DeleteByUser") {
						// Listings go by the index: the hash is
						// found by the next method that takes its
						// token.
						_ = st.Delete(ctx, token)
					}
					f.gone(what, u, handle)
				}
				// Delete: quiet, and the session is gone.
				u := "user-delete"
				token, handle := f.write(meta(u, k.e, k.x), indexed, score)
				if err := st.Delete(ctx, token); err != nil {
					t.Errorf("%s, indexed %v: Delete = %v, want nil", kind, indexed, err)
				}
				f.gone(fmt.Sprintf("%s, indexed %v: Delete", kind, indexed), u, handle)
			}
			// Count and Stats do not count it.
			u := "user-count"
			token, handle := f.write(meta(u, k.e, k.x), true, score)
			if n, err := st.Count(ctx); err != nil || n != 0 {
				t.Errorf("%s: Count = %d, %v; want 0", kind, n, err)
			}
			if ss, err := st.Stats(ctx); err != nil || ss.Sessions != 0 || ss.Users != 0 {
				t.Errorf("%s: Stats = %+v, %v; want none", kind, ss, err)
			}
			f.gone(kind+": Count, Stats", u, handle)
			if ok, err := st.Exists(ctx, token); err != nil || ok {
				t.Errorf("%s: Exists after Count = %v, %v; want false", kind, ok, err)
			}
			// Cleanup and Create remove such keys too.
			_, handle = f.write(meta(u, k.e, k.x), true, score)
			if n, err := st.Cleanup(ctx); err != nil || n != 1 {
				t.Errorf("%s: Cleanup = %d, %v; want 1", kind, n, err)
			}
			f.gone(kind+": Cleanup", u, handle)
			_, handle = f.write(meta(u, k.e, k.x), true, score)
			c, err := st.Create(ctx, "other", nil)
			if err != nil {
				t.Fatal(err)
			}
			f.gone(kind+": Create", u, handle)
			if err := st.Delete(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestMalformedSessionEveryMethod: a session hash whose meta fields are
// not what the scripts write (an absurd expiry among them) is ErrInvalid
// in every method that reads it, and none of them writes over it: not
// Touch, Update, Extend or Rotate.
func TestMalformedSessionEveryMethod(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		const prefix = "malf:"
		b := backendOn(t, s, &coordredis.Options{Prefix: prefix})
		st := b.Sessions()
		f := foreign{t, rawClient(t, s), prefix}
		live := f.now() + time.Hour.Milliseconds()
		with := func(kv ...string) map[string]string {
			m := meta("u", live, 0)
			for i := 0; i < len(kv); i += 2 {
				if kv[i+1] == "<none>" {
					delete(m, kv[i])
					continue
				}
				m[kv[i]] = kv[i+1]
			}
			return m
		}
		cases := map[string]map[string]string{
			"negative expiry":        with("_e", "-5"),
			"expiry in exponent":     with("_e", "1e15"),
			"expiry with a sign":     with("_e", "+"+strconv.FormatInt(live, 10)),
			"expiry with a space":    with("_e", " "+strconv.FormatInt(live, 10)),
			"expiry past int64":      with("_e", "99999999999999999999"),
			"expiry of 16 digits":    with("_e", "1000000000000000"),
			"expiry not a number":    with("_e", "tomorrow"),
			"expiry empty":           with("_e", ""),
			"expiry fractional":      with("_e", strconv.FormatInt(live, 10)+".5"),
			"missing expiry":         with("_e", "<none>"),
			"absurd deadline":        with("_x", "-1"),
			"deadline not a number":  with("_x", "never"),
			"missing deadline":       with("_x", "<none>"),
			"idle TTL 0":             with("_i", "0"),
			"idle TTL negative":      with("_i", "-3600000"),
			"missing idle TTL":       with("_i", "<none>"),
			"missing created":        with("_c", "<none>"),
			"absurd last access":     with("_a", "0x10"),
			"data size not a number": with("_n", "lots"),
			"empty user":             with("_u", ""),
			"user with NUL":          with("_u", "u\x00v"),
			"user not UTF-8":         with("_u", "u\xff"),
			"user a surrogate":       with("_u", "u\xed\xa0\x80"),
			"missing user":           with("_u", "<none>"),
			"unknown field":          with("zzz", "1"),
			"empty data key":         with("d:", "1"),
			"data key with NUL":      with("d:a\x00b", "1"),
		}
		methods := []string{"Get", "Exists", "Touch", "Update", "Update deleting", "Extend", "Rotate"}
		for name, fields := range cases {
			token, handle := f.write(fields, false, 0)
			key := f.key(handle)
			before := f.raw.HGetAll(ctx, key).Val()
			for _, m := range methods {
				err := sessionMethods[m](ctx, st, "u", token, handle)
				if !errors.Is(err, coord.ErrInvalid) {
					t.Errorf("%s: %s = %v, want ErrInvalid", name, m, err)
				}
				after := f.raw.HGetAll(ctx, key).Val()
				if !maps.Equal(before, after) {
					t.Errorf("%s: %s wrote over the malformed session: %q became %q", name, m, before, after)
					before = after
				}
				if ttl := f.raw.PTTL(ctx, key).Val(); ttl != -1 {
					t.Errorf("%s: %s gave the malformed session a TTL of %v", name, m, ttl)
				}
			}
			// Delete ends it.
			if err := st.Delete(ctx, token); err != nil {
				t.Errorf("%s: Delete = %v, want nil", name, err)
			}
			if n := f.raw.Exists(ctx, key).Val(); n != 0 {
				t.Errorf("%s: Delete left the malformed session", name)
			}
		}
		// A key of another type under a session's name.
		token, handle := f.write(map[string]string{"x": "1"}, false, 0)
		key := f.key(handle)
		f.raw.Del(ctx, key)
		f.raw.Set(ctx, key, "a string", 0)
		for _, m := range methods {
			if err := sessionMethods[m](ctx, st, "u", token, handle); !errors.Is(err, coord.ErrInvalid) {
				t.Errorf("a string key: %s = %v, want ErrInvalid", m, err)
			}
		}
		if v := f.raw.Get(ctx, key).Val(); v != "a string" {
			t.Errorf("a string key became %q", v)
		}
	})
}

// TestMalformedIndexedSessionListed: ByUser over a malformed session in
// the index is ErrInvalid; DeleteByUser ends it.
func TestMalformedIndexedSessionListed(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		const prefix = "malfidx:"
		b := backendOn(t, s, &coordredis.Options{Prefix: prefix})
		st := b.Sessions()
		f := foreign{t, rawClient(t, s), prefix}
		live := f.now() + time.Hour.Milliseconds()
		fields := meta("u", live, 0)
		fields["_e"] = "-1"
		_, handle := f.write(fields, true, live)
		if _, err := st.ByUser(ctx, "u"); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("ByUser = %v, want ErrInvalid", err)
		}
		if _, err := st.DeleteByUser(ctx, "u"); err != nil {
			t.Errorf("DeleteByUser = %v", err)
		}
		f.gone("DeleteByUser", "u", handle)
	})
}

// TestLiveForeignSession: a well-formed hash with a future expiry and no
// TTL is a live session to every method, and Touch and Extend give its
// key the TTL of its expiry.
func TestLiveForeignSession(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		const prefix = "live:"
		b := backendOn(t, s, &coordredis.Options{Prefix: prefix})
		st := b.Sessions()
		f := foreign{t, rawClient(t, s), prefix}
		now := f.now()
		live := now + time.Hour.Milliseconds()
		// Within a second of its end, by the server's clock: Get and
		// Exists have the script decide, and it is live.
		soon := now + 700
		for _, e := range []int64{live, soon} {
			token, handle := f.write(meta("u", e, 0), false, 0)
			for _, name := range []string{"Get", "Exists"} {
				if err := sessionMethods[name](ctx, st, "u", token, handle); err != nil {
					t.Errorf("%s of a session that expires in %dms = %v, want nil", name, e-now, err)
				}
			}
		}
		for _, name := range []string{"Get", "Exists", "Touch", "Update", "Extend", "Rotate"} {
			token, handle := f.write(meta("u", live, 0), true, live)
			if err := sessionMethods[name](ctx, st, "u", token, handle); err != nil {
				t.Errorf("%s = %v, want nil", name, err)
			}
			if name == "Touch" || name == "Extend" {
				if ttl := f.raw.PTTL(ctx, f.key(handle)).Val(); ttl <= 0 {
					t.Errorf("%s left the key without a TTL (%v)", name, ttl)
				}
			}
		}
	})
}

// TestSessionReadsAfterScriptFlush: Get and Touch, whose scripts are
// read straight into a map, load their script again after SCRIPT FLUSH.
func TestSessionReadsAfterScriptFlush(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		b := backendOn(t, s, &coordredis.Options{Prefix: "flush:"})
		raw := rawClient(t, s)
		sess, err := b.Sessions().Create(ctx, "u", map[string]any{"k": "v"})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"Get", "Touch", "Get"} {
			if err := raw.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			var got *coord.Session
			if name == "Get" {
				got, err = b.Sessions().Get(ctx, sess.ID)
			} else {
				got, err = b.Sessions().Touch(ctx, sess.ID)
			}
			if err != nil || string(got.Data["k"]) != `"v"` {
				t.Fatalf("%s after SCRIPT FLUSH = %+v, %v", name, got, err)
			}
		}
	})
}

// TestUnindexedSessionIndexedByTouch: a live, well-formed hash in no
// index (written by another tool) is indexed by Touch and by Extend, so
// Count, Stats and ByUser see it from then on, and the index entries go
// with it.
func TestUnindexedSessionIndexedByTouch(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		for _, name := range []string{"Touch", "Extend"} {
			prefix := "unidx" + name + ":"
			b := backendOn(t, s, &coordredis.Options{Prefix: prefix})
			st := b.Sessions()
			f := foreign{t, rawClient(t, s), prefix}
			live := f.now() + time.Hour.Milliseconds()
			token, handle := f.write(meta("u", live, 0), false, 0)
			if n, err := st.Count(ctx); err != nil || n != 0 {
				t.Fatalf("Count before %s = %d, %v; want 0 (not indexed)", name, n, err)
			}
			if err := sessionMethods[name](ctx, st, "u", token, handle); err != nil {
				t.Fatalf("%s = %v", name, err)
			}
			if n, err := st.Count(ctx); err != nil || n != 1 {
				t.Errorf("Count after %s = %d, %v; want 1", name, n, err)
			}
			if ss, err := st.Stats(ctx); err != nil || ss.Sessions != 1 || ss.Users != 1 {
				t.Errorf("Stats after %s = %+v, %v; want one session of one user", name, ss, err)
			}
			if list, err := st.ByUser(ctx, "u"); err != nil || len(list) != 1 || list[0].Handle != handle {
				t.Errorf("ByUser after %s = %d sessions, %v; want the one", name, len(list), err)
			}
			// Touched again: still counted once.
			if err := sessionMethods[name](ctx, st, "u", token, handle); err != nil {
				t.Fatalf("%s again = %v", name, err)
			}
			if ss, err := st.Stats(ctx); err != nil || ss.Sessions != 1 || ss.Users != 1 {
				t.Errorf("Stats after a second %s = %+v, %v; want one session of one user", name, ss, err)
			}
			if err := st.Delete(ctx, token); err != nil {
				t.Fatal(err)
			}
			f.gone(name+", then Delete", "u", handle)
		}
	})
}
