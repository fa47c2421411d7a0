package redis_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// storedSize returns the session's data size as Redis holds it (field
// names without "d:", and values) and its "_n" field.
func storedSize(t *testing.T, f foreign, handle string) (actual int, recorded string) {
	t.Helper()
	all, err := f.raw.HGetAll(t.Context(), f.key(handle)).Result()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range all {
		if name, ok := strings.CutPrefix(k, "d:"); ok {
			actual += len(name) + len(v)
		}
	}
	return actual, all["_n"]
}

// TestSessionSizeCount: the byte count Update checks the limit against
// stays the data's size through creates, merges, replacements, deletions
// and concurrent merges, and a session without one (written by an older
// version) has it counted from the hash, so the limit holds for it too.
func TestSessionSizeCount(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		ctx := t.Context()
		const prefix = "size:"
		const limit = 4096
		b := backendOn(t, s, &coordredis.Options{Prefix: prefix, MaxPayload: limit})
		st := b.Sessions()
		f := foreign{t, rawClient(t, s), prefix}
		check := func(what, handle string) {
			t.Helper()
			actual, recorded := storedSize(t, f, handle)
			if recorded != strconv.Itoa(actual) {
				t.Errorf("%s: _n = %q, the data holds %d bytes", what, recorded, actual)
			}
			if actual > limit {
				t.Errorf("%s: the data holds %d bytes, over the limit of %d", what, actual, limit)
			}
		}
		sess, err := st.Create(ctx, "u", map[string]any{"a": 1, "é": "ü", "list": []int{1, 2, 3}})
		if err != nil {
			t.Fatal(err)
		}
		check("Create", sess.Handle)
		steps := []map[string]any{
			{"b": strings.Repeat("x", 100)},
			{"b": "short", "c": nil, "a": nil},
			{"list": nil, "missing": nil},
			{"big": strings.Repeat("y", 3000)},
			{"big": strings.Repeat("z", 3500), "b": nil},
		}
		for i, d := range steps {
			if err := st.Update(ctx, sess.ID, d); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			check(fmt.Sprintf("step %d", i), sess.Handle)
		}
		if err := st.Update(ctx, sess.ID, map[string]any{"more": strings.Repeat("m", 600)}); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("Update past the limit = %v, want ErrInvalid", err)
		}
		check("refused Update", sess.Handle)

		// Concurrent merges from two instances.
		other := backendOn(t, s, &coordredis.Options{Prefix: prefix, MaxPayload: limit}).Sessions()
		c, err := st.Create(ctx, "u", nil)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				store := st
				if w%2 == 1 {
					store = other
				}
				for i := range 20 {
					d := map[string]any{fmt.Sprintf("w%d-%d", w, i%5): strings.Repeat("v", 10*i+w)}
					if i%7 == 6 {
						d[fmt.Sprintf("w%d-%d", w, (i+1)%5)] = nil
					}
					if err := store.Update(ctx, c.ID, d); err != nil && !errors.Is(err, coord.ErrInvalid) {
						t.Errorf("concurrent Update: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		check("concurrent merges", c.Handle)

		// A session without the count: counted when first needed.
		old, err := st.Create(ctx, "u", map[string]any{"k": strings.Repeat("o", 2000)})
		if err != nil {
			t.Fatal(err)
		}
		f.raw.HDel(ctx, f.key(old.Handle), "_n")
		if err := st.Update(ctx, old.ID, map[string]any{"k2": strings.Repeat("p", 2500)}); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("Update past the limit of a session without _n = %v, want ErrInvalid", err)
		}
		if err := st.Update(ctx, old.ID, map[string]any{"k2": strings.Repeat("p", 1500)}); err != nil {
			t.Errorf("Update within the limit of a session without _n = %v", err)
		}
		check("session without _n after an Update", old.Handle)

		// A count left too high (an older version's Update deleted
		// fields without it): counted again before a refusal.
		f.raw.HSet(ctx, f.key(old.Handle), "_n", "999999")
		if err := st.Update(ctx, old.ID, map[string]any{"k3": "small"}); err != nil {
			t.Errorf("Update within the limit of a session whose _n is too high = %v", err)
		}
		check("session whose _n was too high, after an Update", old.Handle)
	})
}
