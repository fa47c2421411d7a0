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
	"github.com/cgn-bot/coord/internal/redistest"
)

// checkFieldCount checks that session hash key's "_f" is its field count.
func checkFieldCount(t *testing.T, raw *goredis.Client, what, key string) {
	t.Helper()
	ctx := context.Background()
	n, err := raw.HLen(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	f, err := raw.HGet(ctx, key, "_f").Result()
	if err != nil || f != strconv.FormatInt(n, 10) {
		t.Errorf("%s: _f = %q (%v), want the hash's %d fields", what, f, err, n)
	}
}

// TestSessionFieldCountKept: Create and Update keep "_f" equal to the
// hash's field count through sets of new and existing fields, deletes of
// present and absent ones, merges of more than 500 fields, and on a
// session written without "_f" and "_n" (an older version's).
func TestSessionFieldCountKept(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		const prefix = "fcount:"
		b := backendOn(t, s, &coordredis.Options{Prefix: prefix, MaxPayload: 1 << 20})
		st := b.Sessions()
		raw := rawClient(t, s)
		sess, err := st.Create(ctx, "u", map[string]any{"a": 1, "b": "x"})
		if err != nil {
			t.Fatal(err)
		}
		key := prefix + "{s}:s:" + sess.Handle
		checkFieldCount(t, raw, "Create", key)
		big := map[string]any{}
		for i := range 1200 {
			big[fmt.Sprintf("k%04d", i)] = i
		}
		drop := map[string]any{}
		for i := range 700 {
			drop[fmt.Sprintf("k%04d", 2*i)] = nil // 600 present, 100 absent
		}
		steps := []struct {
			what string
			data map[string]any
		}{
			{"set an existing field", map[string]any{"a": 2}},
			{"set a new field", map[string]any{"c": true}},
			{"delete a present field", map[string]any{"b": nil}},
			{"delete an absent field", map[string]any{"zz": nil}},
			{"set and delete", map[string]any{"b": "y", "c": nil, "d": []int{1}}},
			{"set 1200 fields", big},
			{"delete 600 of them and 100 absent ones", drop},
			{"delete nothing present", map[string]any{"k0000": nil}},
		}
		for _, step := range steps {
			if err := st.Update(ctx, sess.ID, step.data); err != nil {
				t.Fatalf("%s: Update = %v", step.what, err)
			}
			checkFieldCount(t, raw, step.what, key)
		}
		got, err := st.Get(ctx, sess.ID)
		if err != nil || len(got.Data) != 3+600 {
			t.Fatalf("Get = %d fields, %v; want 603", len(got.Data), err)
		}

		// A session an older version wrote: no "_f", no "_n".
		f := foreign{t, raw, prefix}
		fields := meta("u", f.now()+time.Hour.Milliseconds(), 0)
		token, handle := f.write(fields, true, f.now()+time.Hour.Milliseconds())
		if err := st.Update(ctx, token, map[string]any{"k": nil, "n": 1, "m": 2}); err != nil {
			t.Fatal(err)
		}
		checkFieldCount(t, raw, "an older session", f.key(handle))
		if n, err := raw.HGet(ctx, f.key(handle), "_n").Result(); err != nil || n != "4" { // "n" 1, "m" 2
			t.Errorf("an older session: _n = %q (%v), want 4", n, err)
		}
	})
}

// TestSessionFieldAddedByAnotherWriter: a field added to a session this
// package wrote (its "_f" then no longer counts the hash) is checked by
// name again: a bad one makes the session malformed for the writing
// scripts too, which write nothing over it; a good one is accepted.
func TestSessionFieldAddedByAnotherWriter(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		const prefix = "fadd:"
		b := backendOn(t, s, &coordredis.Options{Prefix: prefix})
		st := b.Sessions()
		raw := rawClient(t, s)
		for _, added := range [][]string{
			{"zzz", "1"},
			{"d:", "1"},
			{"d:a\x00b", "1"},
			{"d:x", "1", "_f", "<none>"},
		} {
			sess, err := st.Create(ctx, "u", map[string]any{"a": 1})
			if err != nil {
				t.Fatal(err)
			}
			key := prefix + "{s}:s:" + sess.Handle
			for i := 0; i < len(added); i += 2 {
				if added[i+1] == "<none>" {
					raw.HDel(ctx, key, added[i])
				} else {
					raw.HSet(ctx, key, added[i], added[i+1])
				}
			}
			bad := added[0] != "d:x"
			before := raw.HGetAll(ctx, key).Val()
			for _, m := range []string{"Update", "Update deleting", "Extend"} {
				err := sessionMethods[m](ctx, st, "u", sess.ID, sess.Handle)
				if bad {
					if !errors.Is(err, coord.ErrInvalid) {
						t.Errorf("%q added: %s = %v, want ErrInvalid", added, m, err)
					}
					if after := raw.HGetAll(ctx, key).Val(); !maps.Equal(before, after) {
						t.Errorf("%q added: %s wrote over the malformed session: %q became %q", added, m, before, after)
					}
				} else if err != nil {
					t.Errorf("%q added: %s = %v, want nil", added, m, err)
				}
			}
			if !bad {
				checkFieldCount(t, raw, fmt.Sprintf("%q added, then Update", added), key)
			}
		}
	})
}

// TestSessionUpdateReadsNoNames: an Update of a session this package
// wrote reads only the meta fields and the merged ones, not the hash's
// field names or the whole hash (the server's command counts show it).
func TestSessionUpdateReadsNoNames(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	raw := goredis.NewClient(srv.Options())
	t.Cleanup(func() { _ = raw.Close() })
	b := backendOn(t, server{"redis-server", srv.Options}, &coordredis.Options{Prefix: "fread:"})
	st := b.Sessions()
	data := map[string]any{}
	for i := range 10 {
		data[fmt.Sprintf("k%d", i)] = i
	}
	sess, err := st.Create(ctx, "u", data)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := st.Update(ctx, sess.ID, map[string]any{"k1": i, "new": i, "k2": nil}); err != nil {
			t.Fatal(err)
		}
	}
	stats := raw.Info(ctx, "commandstats").Val()
	for _, cmd := range []string{"hkeys", "hgetall", "hvals", "hstrlen"} {
		if strings.Contains(stats, "cmdstat_"+cmd+":") {
			t.Errorf("20 Updates ran %s:\n%s", cmd, stats)
		}
	}
	if !strings.Contains(stats, "cmdstat_hmget:calls=20,") {
		t.Errorf("20 Updates did not run one HMGET each:\n%s", stats)
	}
}
