package redis

import (
	"maps"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord/internal/secret"
)

// TestSessionScriptsLeaveForeignHashes: the create and rotate scripts
// never write over a hash that is already under a handle (a foreign one,
// or one missing meta fields), and rotate moves nothing that is not a
// whole session: each is left as it was and the indexes do not change.
func TestSessionScriptsLeaveForeignHashes(t *testing.T) {
	handoffServers(t, func(t *testing.T, opts func() *goredis.Options) {
		ctx := t.Context()
		b, c := newTestBackend(t, opts, &Options{Prefix: "fh:"})
		indexes := func() map[string]string {
			out := map[string]string{}
			for _, k := range []string{b.keys.sessExp, b.keys.sessByUser, b.keys.sessCreated} {
				for _, z := range c.ZRangeWithScores(ctx, k, 0, -1).Val() {
					out[k+"|"+z.Member.(string)] = ""
				}
			}
			for u, n := range c.HGetAll(ctx, b.keys.sessUsers).Val() {
				out["users|"+u] = n
			}
			return out
		}
		hashes := map[string]map[string]any{
			"a foreign hash":           {"owner": "another tool", "x": "1"},
			"a hash without meta":      {"d:a": "1"},
			"a session of another one": {"_u": "v", "_c": "1", "_a": "1", "_e": "9999999999999", "_x": "0", "_i": "1000", "_n": "0"},
		}
		for name, fields := range hashes {
			// Create under a handle that is taken.
			h := secret.Handle(secret.SessionToken())
			key := b.keys.sessionKey(h)
			c.HSet(ctx, key, fields)
			before, idx := c.HGetAll(ctx, key).Val(), indexes()
			res, err := b.sc.sessCreate.Run(ctx, c, b.keys.sessionKeys(key), "u", h, 60000, 0, "d:a", "2").Int64Slice()
			if err != nil || len(res) != 1 || res[0] != 0 {
				t.Errorf("%s: create under its handle = %v, %v; want {0}", name, res, err)
			}
			if after := c.HGetAll(ctx, key).Val(); !maps.Equal(before, after) {
				t.Errorf("%s: create wrote over it: %q became %q", name, before, after)
			}
			if after := indexes(); !maps.Equal(idx, after) {
				t.Errorf("%s: create changed the indexes: %q became %q", name, idx, after)
			}

			// Rotate onto a handle that is taken.
			sess, err := b.Sessions().Create(ctx, "u", map[string]any{"k": 1})
			if err != nil {
				t.Fatal(err)
			}
			old := b.keys.sessionKey(sess.Handle)
			oldBefore, idx := c.HGetAll(ctx, old).Val(), indexes()
			v, err := b.sc.sessRotate.Run(ctx, c, b.keys.sessionKeys(old, key), sess.Handle, h).Result()
			if n, ok := v.(int64); err != nil || !ok || n != -2 {
				t.Errorf("%s: rotate onto its handle = %v, %v; want -2", name, v, err)
			}
			if after := c.HGetAll(ctx, key).Val(); !maps.Equal(before, after) {
				t.Errorf("%s: rotate wrote over it: %q became %q", name, before, after)
			}
			if after := c.HGetAll(ctx, old).Val(); !maps.Equal(oldBefore, after) {
				t.Errorf("%s: a refused rotate changed the session: %q became %q", name, oldBefore, after)
			}
			if after := indexes(); !maps.Equal(idx, after) {
				t.Errorf("%s: a refused rotate changed the indexes: %q became %q", name, idx, after)
			}
		}

		// Rotate of a hash missing a meta field the old script did not
		// read: refused, nothing moved.
		for _, missing := range []string{"_a", "_x", "_i"} {
			sess, err := b.Sessions().Create(ctx, "u", map[string]any{"k": 1})
			if err != nil {
				t.Fatal(err)
			}
			old := b.keys.sessionKey(sess.Handle)
			c.HDel(ctx, old, missing)
			before := c.HGetAll(ctx, old).Val()
			nh := secret.Handle(secret.SessionToken())
			v, err := b.sc.sessRotate.Run(ctx, c, b.keys.sessionKeys(old, b.keys.sessionKey(nh)), sess.Handle, nh).Result()
			if n, ok := v.(int64); err != nil || !ok || n != -1 {
				t.Errorf("rotate of a session without %s = %v, %v; want -1 (malformed)", missing, v, err)
			}
			if after := c.HGetAll(ctx, old).Val(); !maps.Equal(before, after) {
				t.Errorf("rotate of a session without %s changed it: %q became %q", missing, before, after)
			}
			if n := c.Exists(ctx, b.keys.sessionKey(nh)).Val(); n != 0 {
				t.Errorf("rotate of a session without %s moved it", missing)
			}
		}
	})
}
