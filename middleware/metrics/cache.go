package metrics

import (
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/cache"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultCacheName is the cache label value of a near cache recorded by
// [Middleware.Cache] with an empty name.
const DefaultCacheName = "default"

// maxCacheNameLen bounds the length of a cache label value.
const maxCacheNameLen = 128

// CacheStater is what [Middleware.Cache] reads: a *[cache.Cache] of any
// value type.
type CacheStater interface {
	Stats() cache.Stats
}

// Cache records the [cache.Stats] of the near cache c under the cache
// label value name (empty means [DefaultCacheName]). The Stats are read at
// each scrape, so recording costs the cache's operations nothing. The name
// is chosen by the program, not by its users: each distinct name is a set
// of series. Several caches recorded under one name add up.
//
// The returned stop function ends the recording of c: its counters keep
// their last values (a counter never goes down) and its gauges drop out.
// Call it when c is closed, unless c lives as long as the process. stop is
// idempotent. A nil *Middleware records nothing and returns a stop that
// does nothing.
//
// The series, after the namespace and an underscore, each with the label
// cache: cache_hits_total, cache_misses_total, cache_loads_total,
// cache_load_errors_total, cache_loads_discarded_total,
// cache_evictions_total, cache_expirations_total,
// cache_remote_invalidations_total, cache_purges_total{reason}
// (reason "reconnect", "overflow", "malformed", "other" or "local"),
// cache_gaps_total and the gauges cache_entries and cache_suspended.
//
// A service that opens its backend with backend.Open and a Registerer
// gets a Middleware of its own by calling [New] with the same Registerer
// and Options: the two share their metrics.
//
// May return [coord.ErrInvalid]: a nil c, or a name that is longer than
// 128 bytes, not valid UTF-8, or holds control characters.
func (m *Middleware) Cache(name string, c CacheStater) (stop func(), err error) {
	if name == "" {
		name = DefaultCacheName
	}
	if err := validCacheName(name); err != nil {
		return func() {}, err
	}
	if c == nil {
		return func() {}, fmt.Errorf("%w: metrics: nil cache", coord.ErrInvalid)
	}
	if m == nil {
		return func() {}, nil
	}
	return m.caches.add(name, c), nil
}

func validCacheName(name string) error {
	if len(name) > maxCacheNameLen {
		return fmt.Errorf("%w: metrics: cache name is %d bytes, over the limit of %d", coord.ErrInvalid, len(name), maxCacheNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: metrics: cache name is not valid UTF-8", coord.ErrInvalid)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w: metrics: cache name contains control character %#x at byte %d", coord.ErrInvalid, c, i)
		}
	}
	return nil
}

// Purge reasons of a near cache, the values of the reason label of
// cache_purges_total, in the order of cacheCounts.purges.
var cachePurgeReasons = [...]string{"reconnect", "overflow", "malformed", "other", "local"}

// cacheCounts are the counters of one cache label value.
type cacheCounts struct {
	hits, misses, loads, loadErrors, discarded uint64
	evictions, expirations, remote, gaps       uint64
	purges                                     [len(cachePurgeReasons)]uint64
}

func countsOf(s cache.Stats) cacheCounts {
	r := s.PurgeReasons
	return cacheCounts{
		hits: s.Hits, misses: s.Misses, loads: s.Loads, loadErrors: s.LoadErrors,
		discarded: s.Discarded, evictions: s.Evictions, expirations: s.Expirations,
		remote: s.RemoteInvalidations, gaps: s.Gaps,
		purges: [...]uint64{r.Reconnect, r.Overflow, r.Malformed, r.Other, s.LocalPurges},
	}
}

func (a *cacheCounts) add(b cacheCounts) {
	a.hits += b.hits
	a.misses += b.misses
	a.loads += b.loads
	a.loadErrors += b.loadErrors
	a.discarded += b.discarded
	a.evictions += b.evictions
	a.expirations += b.expirations
	a.remote += b.remote
	a.gaps += b.gaps
	for i := range a.purges {
		a.purges[i] += b.purges[i]
	}
}

// cacheEntry is one recorded cache.
type cacheEntry struct {
	name string
	c    CacheStater
}

// cacheCollector reports, at each scrape, the Stats of the recorded near
// caches, by cache name.
type cacheCollector struct {
	hits, misses, loads, loadErrors, discarded *prometheus.Desc
	evictions, expirations, remote, gaps       *prometheus.Desc
	purges, entries, suspended                 *prometheus.Desc

	mu      sync.Mutex
	live    []*cacheEntry
	retired map[string]cacheCounts // last counts of stopped caches, by name
}

var _ prometheus.Collector = (*cacheCollector)(nil)

func newCacheCollector(ns string) *cacheCollector {
	label := []string{"cache"}
	desc := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, labels, nil)
	}
	return &cacheCollector{
		hits:        desc("cache_hits_total", "Near cache lookups that found a value.", label),
		misses:      desc("cache_misses_total", "Near cache lookups that found no value.", label),
		loads:       desc("cache_loads_total", "Loader calls made by a near cache's GetOrLoad.", label),
		loadErrors:  desc("cache_load_errors_total", "Loader calls that failed or panicked.", label),
		discarded:   desc("cache_loads_discarded_total", "Loaded values not stored because an invalidation, write or purge came during the load.", label),
		evictions:   desc("cache_evictions_total", "Near cache entries evicted for the size bound.", label),
		expirations: desc("cache_expirations_total", "Near cache entries removed for their maximum TTL.", label),
		remote:      desc("cache_remote_invalidations_total", "Key and pattern invalidations received from other instances.", label),
		gaps:        desc("cache_gaps_total", "Times a near cache was suspended because its invalidation subscription was known or suspected down.", label),
		purges:      desc("cache_purges_total", "Times a near cache was emptied, by reason (reconnect, overflow, malformed, other, local).", []string{"cache", "reason"}),
		entries:     desc("cache_entries", "Entries a near cache holds (approximate).", label),
		suspended:   desc("cache_suspended", "Near caches suspended now (serving nothing until the subscription is live again).", label),
		retired:     map[string]cacheCounts{},
	}
}

// add records c under name and returns the function that stops it.
func (cc *cacheCollector) add(name string, c CacheStater) func() {
	e := &cacheEntry{name: name, c: c}
	cc.mu.Lock()
	cc.live = append(cc.live, e)
	cc.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			cc.mu.Lock()
			defer cc.mu.Unlock()
			i := slices.Index(cc.live, e)
			if i < 0 {
				return
			}
			cc.live = slices.Delete(cc.live, i, i+1)
			r := cc.retired[name]
			r.add(countsOf(c.Stats()))
			cc.retired[name] = r
		})
	}
}

// Describe implements prometheus.Collector.
func (cc *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		cc.hits, cc.misses, cc.loads, cc.loadErrors, cc.discarded, cc.evictions,
		cc.expirations, cc.remote, cc.gaps, cc.purges, cc.entries, cc.suspended,
	} {
		ch <- d
	}
}

// cacheTotals are what Collect reports for one name.
type cacheTotals struct {
	counts             cacheCounts
	entries, suspended float64
}

// Collect implements prometheus.Collector.
func (cc *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	// Stats are read with mu held, so a stop that runs meanwhile neither
	// counts a cache twice nor loses it.
	cc.mu.Lock()
	totals := make(map[string]*cacheTotals, len(cc.live)+len(cc.retired))
	get := func(name string) *cacheTotals {
		t := totals[name]
		if t == nil {
			t = &cacheTotals{}
			totals[name] = t
		}
		return t
	}
	for name, r := range cc.retired {
		get(name).counts.add(r)
	}
	for _, e := range cc.live {
		s := e.c.Stats()
		t := get(e.name)
		t.counts.add(countsOf(s))
		t.entries += float64(s.Entries)
		if s.Suspended {
			t.suspended++
		}
	}
	cc.mu.Unlock()

	for name, t := range totals {
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), name)
		}
		k := t.counts
		counter(cc.hits, k.hits)
		counter(cc.misses, k.misses)
		counter(cc.loads, k.loads)
		counter(cc.loadErrors, k.loadErrors)
		counter(cc.discarded, k.discarded)
		counter(cc.evictions, k.evictions)
		counter(cc.expirations, k.expirations)
		counter(cc.remote, k.remote)
		counter(cc.gaps, k.gaps)
		for i, reason := range cachePurgeReasons {
			ch <- prometheus.MustNewConstMetric(cc.purges, prometheus.CounterValue, float64(k.purges[i]), name, reason)
		}
		ch <- prometheus.MustNewConstMetric(cc.entries, prometheus.GaugeValue, t.entries, name)
		ch <- prometheus.MustNewConstMetric(cc.suspended, prometheus.GaugeValue, t.suspended, name)
	}
}
