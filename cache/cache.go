package cache

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

// Loader loads the value of key from the source of truth for
// [Cache.GetOrLoad].
type Loader[V any] func(ctx context.Context, key string) (V, error)

// Cache is a near cache: a bounded local cache of values of type V whose
// entries are evicted when any instance invalidates them through a
// [coord.Invalidator]. A Cache is safe for concurrent use by multiple
// goroutines.
//
// Every entry lives at most MaxTTL after it was stored. A PurgeAll from
// the Invalidator (sent after any gap in delivery: a reconnect, a
// subscription queue overflow, a malformed invalidation dropped) empties
// the cache, so it never serves a value it may have missed an
// invalidation for. The cache subscribes with [coord.NotifyGaps]: from
// the moment the backend knows or suspects its subscriber connection is
// down (a [coord.GapStart]) until the PurgeAll [coord.ReasonReconnect]
// that says it is live again, the cache is suspended: it empties itself,
// serves nothing and stores nothing, and GetOrLoad loads through.
type Cache[V any] struct {
	inv    coord.Invalidator
	store  *otter.Cache[string, V]
	hits   *stats.Counter // hits and misses, striped
	exec   *executor
	logger *slog.Logger

	sub     coord.Subscription
	subDone <-chan struct{}

	// ended holds the error every method returns once the cache no
	// longer serves: closed, or its subscription ended.
	ended     atomic.Pointer[error]
	closeOnce sync.Once
	// slowClose is how long Close waits for the subscription to end
	// before it logs a warning (and goes on waiting).
	slowClose time.Duration

	// suspended is set from a GapStart to the PurgeAll that ends the gap:
	// nothing is served or stored meanwhile. It is set with mu held.
	suspended atomic.Bool

	// mu guards loads. A load in loads is the one that may store its
	// value; an invalidation, write or purge that covers its key removes
	// it, and then its value is returned to its callers but not stored.
	mu      sync.Mutex
	loads   map[string]*load[V]
	loading atomic.Int64 // len(loads), read without mu on hot paths

	loadCount   atomic.Uint64
	loadErrors  atomic.Uint64
	discarded   atomic.Uint64
	evictions   atomic.Uint64
	expirations atomic.Uint64
	remote      atomic.Uint64
	purges      [numReasons]atomic.Uint64 // by reason
	localPurges atomic.Uint64
	gaps        atomic.Uint64
}

// Purge reasons, the indexes of Cache.purges.
const (
	reasonReconnect = iota
	reasonOverflow
	reasonMalformed
	reasonOther
	numReasons
)

// reasonIndex returns the index in Cache.purges of a PurgeAll's reason.
func reasonIndex(inv coord.Invalidation) int {
	if inv.Kind != coord.PurgeAll {
		return reasonOther
	}
	switch inv.Reason {
	case coord.ReasonReconnect:
		return reasonReconnect
	case coord.ReasonOverflow:
		return reasonOverflow
	case coord.ReasonMalformed:
		return reasonMalformed
	}
	return reasonOther
}

// load is one call of a Loader that concurrent callers share.
type load[V any] struct {
	done chan struct{}
	// Set before done is closed.
	val V
	err error
	// ctxEnded reports that the leading caller's ctx had ended when the
	// loader returned, so err may be that caller's alone.
	ctxEnded bool
	// waiters counts the callers that joined the load (guarded by mu).
	waiters int
}

// Stats are a Cache's counters since it was created. Their JSON names
// (hits, misses, load_errors, ...) are part of the API: a service can
// serve them as they are.
type Stats struct {
	Hits        uint64 `json:"hits"`        // lookups (Get, GetOrLoad) that found a value
	Misses      uint64 `json:"misses"`      // lookups that found none
	Loads       uint64 `json:"loads"`       // Loader calls made by GetOrLoad
	LoadErrors  uint64 `json:"load_errors"` // Loader calls that returned an error or panicked
	Discarded   uint64 `json:"discarded"`   // loaded values not stored: an invalidation, write or purge came during the load
	Evictions   uint64 `json:"evictions"`   // entries evicted for the size bound
	Expirations uint64 `json:"expirations"` // entries removed for MaxTTL
	// RemoteInvalidations counts key and pattern invalidations received
	// from other instances.
	RemoteInvalidations uint64 `json:"remote_invalidations"`
	// Purges counts PurgeAll signals received from the Invalidator (after
	// a reconnect or an overflow of the subscription queue), each of which
	// emptied the cache. Like RemoteInvalidations, it is raised after the
	// eviction is done.
	Purges uint64 `json:"purges"`
	// PurgeReasons splits Purges by the reason of the PurgeAll; its
	// fields add up to Purges.
	PurgeReasons PurgeReasons `json:"purge_reasons"`
	// LocalPurges counts the calls of [Cache.Purge]. They are not in
	// Purges.
	LocalPurges uint64 `json:"local_purges"`
	// Gaps counts GapStart notices: the times the cache was suspended
	// because the Invalidator's subscription was known or suspected down.
	Gaps uint64 `json:"gaps"`
	// Suspended reports that the cache is suspended now (see [Cache]).
	Suspended bool `json:"suspended"`
	// Entries is the approximate number of entries held now.
	Entries int `json:"entries"`
}

// PurgeReasons counts the PurgeAll signals a [Cache] received, by their
// reason (see [coord.Invalidation].Reason).
type PurgeReasons struct {
	// Reconnect: the subscription is live again after a gap
	// ([coord.ReasonReconnect]).
	Reconnect uint64 `json:"reconnect"`
	// Overflow: the subscription's queue overflowed
	// ([coord.ReasonOverflow]).
	Overflow uint64 `json:"overflow"`
	// Malformed: an invalidation that could not be accepted was dropped
	// ([coord.ReasonMalformed]).
	Malformed uint64 `json:"malformed"`
	// Other: any other reason, and invalidation kinds this version does
	// not know (treated as a PurgeAll).
	Other uint64 `json:"other"`
}

// New returns a near cache over inv and subscribes it to inv's remote
// invalidations. ctx is used for the subscription call and its values;
// ending ctx later does not end the cache: [Cache.Close] does. The caller
// keeps ownership of inv. opts may be nil.
//
// May return [coord.ErrInvalid] (bad options, or an Invalidator whose
// Subscribe returned a nil Subscription or one whose Done is nil) or the
// error of inv.Subscribe.
func New[V any](ctx context.Context, inv coord.Invalidator, opts *Options) (*Cache[V], error) {
	if inv == nil {
		return nil, fmt.Errorf("%w: cache: nil Invalidator", coord.ErrInvalid)
	}
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	c := &Cache[V]{
		inv:       inv,
		hits:      stats.NewCounter(),
		logger:    o.logger,
		loads:     make(map[string]*load[V]),
		slowClose: defaultSlowClose,
	}
	exec := newExecutor()
	c.exec = exec
	c.store, err = otter.New(&otter.Options[string, V]{
		MaximumSize:      o.maxSize,
		ExpiryCalculator: otter.ExpiryWriting[string, V](o.maxTTL),
		StatsRecorder:    c.hits,
		OnAtomicDeletion: c.onDeletion,
		// Maintenance runs on the cache's own goroutine (see executor),
		// which Close stops and waits for, as it does for otter's
		// periodic clean-up.
		Executor: exec.submit,
		Logger:   otterLogger{o.logger},
	})
	if err != nil {
		exec.stop()
		return nil, fmt.Errorf("%w: cache: %v", coord.ErrInvalid, err)
	}
	sopts := []coord.SubscribeOption{coord.NotifyGaps()}
	if o.queueSize > 0 {
		sopts = append(sopts, coord.WithQueueSize(o.queueSize))
	}
	sub, err := inv.Subscribe(context.WithoutCancel(ctx), c.onInvalidation, sopts...)
	if err != nil {
		c.store.StopAllGoroutines()
		exec.stop()
		return nil, fmt.Errorf("cache: subscribe to invalidations: %w", err)
	}
	var subDone <-chan struct{}
	if sub != nil {
		subDone = sub.Done()
	}
	if subDone == nil {
		// A nil Subscription would panic later, and a nil Done channel
		// would block Close for ever: both are broken Invalidators (an
		// unconfigured mock returns them; see coordmock.ReadySubscription).
		if sub != nil {
			sub.Unsubscribe()
		}
		c.store.StopAllGoroutines()
		exec.stop()
		return nil, fmt.Errorf("%w: cache: Invalidator.Subscribe returned no error but no subscription or a nil Done channel", coord.ErrInvalid)
	}
	c.sub, c.subDone = sub, subDone
	return c, nil
}

// Get returns the value cached for key. It never loads, and an invalid key
// is simply not found. After Close, once the invalidation subscription
// has ended, or while the cache is suspended, it finds nothing.
func (c *Cache[V]) Get(key string) (V, bool) {
	if c.check() != nil || c.suspended.Load() {
		var zero V
		return zero, false
	}
	return c.store.GetIfPresent(key)
}

// Set stores v under key on this instance, for MaxTTL at most. It does
// not tell the other instances: after changing the source of truth, call
// [Cache.Delete] so that they drop their copies. A load of key running
// meanwhile does not overwrite v. While the cache is suspended, Set
// stores nothing.
//
// May return [coord.ErrInvalid] or [coord.ErrClosed].
func (c *Cache[V]) Set(key string, v V) error {
	if err := driver.ValidateName("cache key", key); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	c.detachKey(key)
	if c.suspended.Load() {
		return nil
	}
	c.store.Set(key, v)
	if c.suspended.Load() {
		// Suspended meanwhile: its purge may have run before the Set.
		c.store.Invalidate(key)
	}
	return nil
}

// Delete evicts key on this instance and then tells the other instances
// to evict it. The local eviction happens even when the broadcast fails.
//
// May return [coord.ErrInvalid], [coord.ErrClosed] or the error of
// [coord.Invalidator.Invalidate].
func (c *Cache[V]) Delete(ctx context.Context, key string) error {
	if err := driver.ValidateName("cache key", key); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	c.evictKey(key)
	return c.inv.Invalidate(ctx, key, nil)
}

// DeletePattern evicts the keys matching glob (Redis glob rules, see
// [coord.MatchGlob]) on this instance and then tells the other instances
// to evict theirs. The local eviction happens even when the broadcast
// fails.
//
// A pattern eviction visits every entry (otter's Keys iterator, which
// locks one hash-table bucket at a time to copy its entries): its cost
// grows with the number of entries and with the capacity the table grew
// to: about 60-70ns per entry for 1,000 entries and 150-300ns per entry
// for 100,000 (15-30ms) on a busy 2-core machine (BenchmarkDeletePattern). It
// holds no lock of the whole cache, so reads and writes go on meanwhile;
// an entry stored while it runs may be kept. Remote pattern invalidations
// cost the same, on the subscription's goroutine.
//
// May return [coord.ErrInvalid], [coord.ErrClosed] or the error of
// [coord.Invalidator.InvalidatePattern].
func (c *Cache[V]) DeletePattern(ctx context.Context, glob string) error {
	if err := driver.ValidateGlob(glob); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	c.evictPattern(glob)
	return c.inv.InvalidatePattern(ctx, glob, nil)
}

// Purge empties the cache on this instance only. A load running meanwhile
// does not store its value. [Stats].LocalPurges counts the calls.
func (c *Cache[V]) Purge() {
	c.purge()
	if c.ended.Load() == nil {
		c.localPurges.Add(1)
	}
}

// GetOrLoad returns the value cached for key or, on a miss, loads it with
// loader and caches it. Concurrent callers for one key share one loader
// call. loader runs on the goroutine of the caller that started the load,
// with that caller's ctx; if that ctx ends and the load fails, the other
// callers start a new load rather than take that caller's error. A caller
// whose own ctx ends stops waiting and returns ctx.Err().
//
// An invalidation of key (by key, by a matching pattern, or PurgeAll), a
// Set, a Delete or a Purge that happens while the load runs stops the
// loaded value from being cached: the callers already waiting still get
// it, the next lookup misses, and later callers start a new load. A
// loader error is returned as is and nothing is cached. A panic in loader
// goes on in the caller that ran it; the others get an error.
//
// May return [coord.ErrInvalid], [coord.ErrClosed], ctx.Err() or the
// loader's error.
func (c *Cache[V]) GetOrLoad(ctx context.Context, key string, loader Loader[V]) (V, error) {
	v, _, err := c.GetOrLoadHit(ctx, key, loader)
	return v, err
}

// GetOrLoadHit is [Cache.GetOrLoad] that also reports whether the value
// was a hit: found in the cache, with no loader call made or waited for.
// hit is false when this call ran loader, when it shared the load another
// caller ran, while the cache is suspended (it loads through), and with
// an error.
//
// A lookup that misses and then finds the value a concurrent load stored
// meanwhile is a hit here, but [Stats] counts it as a miss (its first
// lookup missed).
func (c *Cache[V]) GetOrLoadHit(ctx context.Context, key string, loader Loader[V]) (v V, hit bool, err error) {
	var zero V
	if err := driver.ValidateName("cache key", key); err != nil {
		return zero, false, err
	}
	if loader == nil {
		return zero, false, fmt.Errorf("%w: cache: nil loader", coord.ErrInvalid)
	}
	for {
		if err := c.check(); err != nil {
			return zero, false, err
		}
		if c.suspended.Load() {
			// Load through: nothing is served, and runLoad stores nothing.
		} else if v, ok := c.store.GetIfPresent(key); ok {
			return v, true, nil
		}
		if err := ctx.Err(); err != nil {
			return zero, false, err
		}
		c.mu.Lock()
		// A load may have stored the value since the lookup above.
		if e, ok := c.store.GetEntryQuietly(key); ok && !c.suspended.Load() {
			c.mu.Unlock()
			return e.Value, true, nil
		}
		if l := c.loads[key]; l != nil {
			l.waiters++
			c.mu.Unlock()
			select {
			case <-l.done:
			case <-ctx.Done():
				return zero, false, ctx.Err()
			}
			if l.err != nil && l.ctxEnded && ctx.Err() == nil {
				continue
			}
			return l.val, false, l.err
		}
		l := &load[V]{done: make(chan struct{})}
		c.loads[key] = l
		c.loading.Add(1)
		c.mu.Unlock()
		v, err := c.runLoad(ctx, key, l, loader)
		return v, false, err
	}
}

// runLoad calls loader for l, stores the value unless l was detached
// meanwhile, and wakes l's waiters, also when loader panics.
func (c *Cache[V]) runLoad(ctx context.Context, key string, l *load[V], loader Loader[V]) (v V, err error) {
	c.loadCount.Add(1)
	panicked := true
	defer func() {
		if panicked {
			err = fmt.Errorf("cache: loader of key %q panicked", key)
		}
		l.val, l.err, l.ctxEnded = v, err, ctx.Err() != nil
		if err != nil {
			c.loadErrors.Add(1)
		}
		c.mu.Lock()
		current := c.loads[key] == l
		if current {
			delete(c.loads, key)
			c.loading.Add(-1)
		}
		if err == nil {
			if current && c.serving() {
				c.store.Set(key, v)
			} else {
				c.discarded.Add(1)
			}
		}
		c.mu.Unlock()
		close(l.done)
	}()
	v, err = loader(ctx, key)
	panicked = false
	return v, err
}

// Len returns the approximate number of entries.
func (c *Cache[V]) Len() int {
	return c.store.EstimatedSize()
}

// Stats returns the cache's counters. They keep their values after Close.
func (c *Cache[V]) Stats() Stats {
	h := c.hits.Snapshot()
	r := PurgeReasons{
		Reconnect: c.purges[reasonReconnect].Load(),
		Overflow:  c.purges[reasonOverflow].Load(),
		Malformed: c.purges[reasonMalformed].Load(),
		Other:     c.purges[reasonOther].Load(),
	}
	return Stats{
		Hits:                h.Hits,
		Misses:              h.Misses,
		Loads:               c.loadCount.Load(),
		LoadErrors:          c.loadErrors.Load(),
		Discarded:           c.discarded.Load(),
		Evictions:           c.evictions.Load(),
		Expirations:         c.expirations.Load(),
		RemoteInvalidations: c.remote.Load(),
		Purges:              r.Reconnect + r.Overflow + r.Malformed + r.Other,
		PurgeReasons:        r,
		LocalPurges:         c.localPurges.Load(),
		Gaps:                c.gaps.Load(),
		Suspended:           c.suspended.Load(),
		Entries:             c.store.EstimatedSize(),
	}
}

// Close unsubscribes from the Invalidator, waits for a running
// invalidation handler to return, empties the cache and stops its
// maintenance goroutines. It does not close the Invalidator. Close is
// idempotent and always returns nil. Afterwards Get finds nothing, Purge
// does nothing, Set, Delete, DeletePattern and GetOrLoad return
// [coord.ErrClosed], and a load still running returns its value to its
// callers without caching it. Close must not be called from a Loader.
//
// Close waits for the subscription's Done channel, which Unsubscribe must
// close (coord's backends do). A mocked Subscription must close it too
// (coordmock.ReadySubscription does); if it stays open for 5s, Close
// logs a warning to [Options.Logger] and goes on waiting.
func (c *Cache[V]) Close() error {
	c.closeOnce.Do(func() {
		err := fmt.Errorf("%w: cache closed", coord.ErrClosed)
		c.ended.CompareAndSwap(nil, &err)
		c.sub.Unsubscribe()
		c.waitSubscriptionEnd()
		c.purge()
		c.store.StopAllGoroutines()
		c.exec.stop()
	})
	return nil
}

// defaultSlowClose is Cache.slowClose: a subscription's handler here
// only evicts, so a backend ends it within milliseconds of Unsubscribe.
const defaultSlowClose = 5 * time.Second

// waitSubscriptionEnd waits for the subscription's Done after
// Unsubscribe. A Done that stays open is a broken Invalidator (often a
// mocked Subscription whose Unsubscribe does not close it): the wait is
// logged, so the hang it causes can be told apart.
func (c *Cache[V]) waitSubscriptionEnd() {
	t := time.NewTimer(c.slowClose)
	defer t.Stop()
	select {
	case <-c.subDone:
		return
	case <-t.C:
	}
	c.logger.Warn("cache: Close is waiting for the invalidation subscription to end: its Done channel is still open after Unsubscribe (a mocked Subscription must close it; see coordmock.ReadySubscription)",
		slog.Duration("waited", c.slowClose))
	<-c.subDone
}

// check returns nil while the cache serves, and the error to return once
// it was closed or its subscription ended. A cache whose subscription
// ended without Close (the backend was closed) can no longer learn of
// invalidations: it empties itself and stops serving.
func (c *Cache[V]) check() error {
	if p := c.ended.Load(); p != nil {
		return *p
	}
	select {
	case <-c.subDone:
		err := fmt.Errorf("%w: cache: the invalidation subscription ended", coord.ErrClosed)
		if c.ended.CompareAndSwap(nil, &err) {
			c.logger.Warn("cache: invalidation subscription ended; cache emptied and disabled")
			c.purge()
		}
		return *c.ended.Load()
	default:
		return nil
	}
}

// serving reports whether the cache serves and stores, without check's
// side effects: it may be called with mu held.
func (c *Cache[V]) serving() bool {
	if c.ended.Load() != nil || c.suspended.Load() {
		return false
	}
	select {
	case <-c.subDone:
		return false
	default:
		return true
	}
}

// onInvalidation applies a remote invalidation. It runs on the
// subscription's goroutine.
func (c *Cache[V]) onInvalidation(inv coord.Invalidation) {
	// Each counter is raised once the invalidation is applied, so a
	// reader of Stats that sees it also sees its effect.
	switch inv.Kind {
	case coord.KeyInvalidation:
		c.evictKey(inv.Key)
		c.remote.Add(1)
	case coord.PatternInvalidation:
		c.evictPattern(inv.Key)
		c.remote.Add(1)
	case coord.GapStart:
		c.suspend()
		c.gaps.Add(1)
		c.logger.Warn("cache: invalidations may be missed; serving nothing until the subscription is live again", slog.String("reason", inv.Reason))
	default:
		// PurgeAll, or a kind this version does not know: anything may
		// have changed.
		c.purge()
		if inv.Kind == coord.PurgeAll && inv.Reason == coord.ReasonReconnect && c.suspended.Load() {
			// Live again, and emptied of what it may have missed.
			c.suspended.Store(false)
		}
		c.purges[reasonIndex(inv)].Add(1)
		if inv.Kind == coord.PurgeAll && inv.Reason == coord.ReasonReconnect {
			// The end of a gap: recovery, not a failure (the gap's
			// start was the warning).
			c.logger.Info("cache: purged after a gap in invalidations", slog.String("reason", inv.Reason))
		} else {
			c.logger.Warn("cache: purged after a gap in invalidations", slog.String("reason", inv.Reason))
		}
	}
}

// suspend stops the cache from serving and storing, and empties it. The
// flag is set with mu held, so a load that stores after this sees it, and
// one that stored before is removed by the purge.
func (c *Cache[V]) suspend() {
	c.mu.Lock()
	c.suspended.Store(true)
	if len(c.loads) > 0 {
		clear(c.loads)
		c.loading.Store(0)
	}
	c.mu.Unlock()
	c.store.InvalidateAll()
}

// evictKey removes key and stops a running load of it from storing.
func (c *Cache[V]) evictKey(key string) {
	c.detachKey(key)
	c.store.Invalidate(key)
}

// evictPattern removes the keys matching glob and stops the running
// loads of such keys from storing.
func (c *Cache[V]) evictPattern(glob string) {
	match := func(k string) bool { return coord.MatchGlob(glob, k) }
	c.detachLoads(match)
	// Loads detached above stored nothing; a load that stored before is
	// in the store, and the iteration below sees it.
	for k := range c.store.Keys() {
		if match(k) {
			c.store.Invalidate(k)
		}
	}
}

// purge removes every entry and stops every running load from storing.
func (c *Cache[V]) purge() {
	c.detachLoads(nil)
	c.store.InvalidateAll()
}

// detachKey removes the running load of key, if any, from loads, so that
// its value is not stored.
func (c *Cache[V]) detachKey(key string) {
	if c.loading.Load() == 0 {
		return
	}
	c.mu.Lock()
	if _, ok := c.loads[key]; ok {
		delete(c.loads, key)
		c.loading.Add(-1)
	}
	c.mu.Unlock()
}

// detachLoads removes the running loads of the keys that match (all when
// match is nil) from loads, so that their values are not stored. A load
// registered after it returns started after the invalidation arrived.
func (c *Cache[V]) detachLoads(match func(string) bool) {
	if c.loading.Load() == 0 {
		return
	}
	c.mu.Lock()
	for k := range c.loads {
		if match == nil || match(k) {
			delete(c.loads, k)
			c.loading.Add(-1)
		}
	}
	c.mu.Unlock()
}

// onDeletion counts evictions. It runs under a lock of the store and only
// touches counters.
func (c *Cache[V]) onDeletion(e otter.DeletionEvent[string, V]) {
	switch e.Cause {
	case otter.CauseOverflow:
		c.evictions.Add(1)
	case otter.CauseExpiration:
		c.expirations.Add(1)
	}
}

// otterLogger passes otter's warnings to a *slog.Logger.
type otterLogger struct{ l *slog.Logger }

func (o otterLogger) Warn(ctx context.Context, msg string, err error) {
	o.l.WarnContext(ctx, "cache: "+msg, slog.Any("err", err))
}

func (o otterLogger) Error(ctx context.Context, msg string, err error) {
	o.l.ErrorContext(ctx, "cache: "+msg, slog.Any("err", err))
}
