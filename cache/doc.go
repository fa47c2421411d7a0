// Package cache is a near cache: a bounded local cache in each instance,
// kept coherent across instances by a [coord.Invalidator].
//
// Each instance holds a [Cache] over its backend's Invalidator. A write to
// the source of truth is followed by [Cache.Delete] (or
// [Cache.DeletePattern]), which evicts the key here and tells every other
// instance to evict it too; [Cache.GetOrLoad] fills the cache on a miss,
// with one load per key at a time.
//
//	users, err := cache.New[User](ctx, backend.Invalidator(), &cache.Options{MaxSize: 50_000})
//	...
//	u, err := users.GetOrLoad(ctx, "user:"+id, loadUser)
//	...
//	err = saveUser(ctx, u)          // the source of truth
//	err = users.Delete(ctx, "user:"+id)
//
// # Guarantees
//
// The cache follows the rules of Redis's client-side caching:
//
//   - An invalidation (of the key, of a pattern matching it, or a
//     PurgeAll) that arrives while a value is being loaded stops that
//     value from being cached: the load is registered before the loader
//     runs, and the invalidation removes the registration. The callers of
//     that load still get the value; the next lookup misses.
//   - Every entry lives at most [Options.MaxTTL] (default 5 minutes), so
//     a value is never served longer than that, even if every
//     invalidation is lost.
//   - After any gap in delivery (a reconnect, an overflow of the
//     subscription queue, a malformed invalidation dropped) the
//     Invalidator delivers a PurgeAll and the cache empties itself;
//     [Stats].Purges counts these. If the subscription ends (the backend
//     was closed), the cache empties itself and stops serving.
//   - A gap known or suspected while it lasts (a [coord.GapStart]: the
//     subscriber connection is down, or did not answer a PING in time)
//     suspends the cache until the PurgeAll "reconnect" that ends it: the
//     cache empties itself, serves nothing, stores nothing, and
//     GetOrLoad loads through; [Stats].Gaps counts these and
//     [Stats].Suspended tells whether it is suspended now. With the Redis
//     backend's defaults a silent outage of the subscriber connection is
//     noticed within 2 s, so a read is stale at most 2.5 s after the cut.
//   - Patterns match as Redis's glob does ([coord.MatchGlob]): "user:*"
//     matches "user:a/b".
//
// The cache is bounded by [Options.MaxSize] (otter's W-TinyLFU policy
// chooses what to evict). A pattern eviction visits every entry, so its
// cost grows with the size of the cache; see [Cache.DeletePattern].
//
// # Observability
//
// [Cache.Stats] returns the cache's counters (hits, misses, loads, load
// errors, evictions, purges by reason, gaps, whether it is suspended,
// entries); their JSON names are part of the API. [Cache.GetOrLoadHit]
// tells a caller whether its value was a hit. The metrics middleware
// exports the Stats to Prometheus: see Middleware.Cache in
// [github.com/cgn-bot/coord/middleware/metrics].
//
// # Errors
//
// Bad keys and globs are refused with an error wrapping [coord.ErrInvalid];
// after [Cache.Close], methods return an error wrapping [coord.ErrClosed].
// Delete and DeletePattern return the Invalidator's error when the
// broadcast fails (the local eviction is done anyway).
//
// # Goroutines
//
// The cache starts two goroutines: one that runs the underlying otter
// cache's maintenance (so that reads do not pay for it) and otter's
// periodic clean-up; [Cache.Close] stops both and waits for them. Loaders run on
// the goroutine of the caller that started the load; remote invalidations
// are applied on the subscription's goroutine, which the backend owns.
package cache
