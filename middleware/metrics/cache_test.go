package metrics_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend"
	"github.com/cgn-bot/coord/cache"
	"github.com/cgn-bot/coord/middleware/metrics"
)

// statsOf is a CacheStater whose Stats a test sets.
type statsOf struct {
	mu sync.Mutex
	s  cache.Stats
}

func (f *statsOf) Stats() cache.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

func (f *statsOf) set(s cache.Stats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.s = s
}

func TestCacheSeries(t *testing.T) {
	m, reg := newMiddleware(t, nil)
	users := &statsOf{s: cache.Stats{
		Hits: 10, Misses: 4, Loads: 3, LoadErrors: 1, Discarded: 2, Evictions: 5,
		Expirations: 6, RemoteInvalidations: 7, Purges: 4,
		PurgeReasons: cache.PurgeReasons{Reconnect: 1, Overflow: 1, Malformed: 1, Other: 1},
		LocalPurges:  2, Gaps: 1, Suspended: true, Entries: 42,
	}}
	stop, err := m.Cache("users", users)
	if err != nil {
		t.Fatal(err)
	}
	u := []string{"cache", "users"}
	want := map[string]float64{
		"coord_cache_hits_total": 10, "coord_cache_misses_total": 4, "coord_cache_loads_total": 3,
		"coord_cache_load_errors_total": 1, "coord_cache_loads_discarded_total": 2,
		"coord_cache_evictions_total": 5, "coord_cache_expirations_total": 6,
		"coord_cache_remote_invalidations_total": 7, "coord_cache_gaps_total": 1,
		"coord_cache_entries": 42, "coord_cache_suspended": 1,
	}
	for name, v := range want {
		expect(t, reg, v, name, u...)
	}
	for reason, v := range map[string]float64{"reconnect": 1, "overflow": 1, "malformed": 1, "other": 1, "local": 2} {
		expect(t, reg, v, "coord_cache_purges_total", "cache", "users", "reason", reason)
	}
	lint(t, reg)

	// Stats are read at each scrape.
	s := users.Stats()
	s.Hits, s.Entries, s.Suspended = 11, 40, false
	users.set(s)
	expect(t, reg, 11, "coord_cache_hits_total", u...)
	expect(t, reg, 40, "coord_cache_entries", u...)
	expect(t, reg, 0, "coord_cache_suspended", u...)

	// A second cache under the same name adds up; another name is apart;
	// an empty name is "default".
	more := &statsOf{s: cache.Stats{Hits: 1, Entries: 2, Suspended: true}}
	stopMore, err := m.Cache("users", more)
	if err != nil {
		t.Fatal(err)
	}
	dflt := &statsOf{s: cache.Stats{Hits: 100}}
	if _, err := m.Cache("", dflt); err != nil {
		t.Fatal(err)
	}
	expect(t, reg, 12, "coord_cache_hits_total", u...)
	expect(t, reg, 42, "coord_cache_entries", u...)
	expect(t, reg, 1, "coord_cache_suspended", u...)
	expect(t, reg, 100, "coord_cache_hits_total", "cache", metrics.DefaultCacheName)

	// Stopped caches keep their counters (a counter never goes down) and
	// drop out of the gauges; their later Stats are not read.
	stop()
	stop()
	users.set(cache.Stats{Hits: 1_000_000})
	expect(t, reg, 12, "coord_cache_hits_total", u...)
	expect(t, reg, 2, "coord_cache_entries", u...)
	stopMore()
	expect(t, reg, 12, "coord_cache_hits_total", u...)
	expect(t, reg, 0, "coord_cache_entries", u...)
	expect(t, reg, 0, "coord_cache_suspended", u...)
	expect(t, reg, 2, "coord_cache_purges_total", "cache", "users", "reason", "local")
	lint(t, reg)
}

func TestCacheBadInput(t *testing.T) {
	m, reg := newMiddleware(t, nil)
	c := &statsOf{}
	for _, name := range []string{"bad\xff", "tab\there", strings.Repeat("n", 129)} {
		if _, err := m.Cache(name, c); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("Cache(%q): %v, want ErrInvalid", name, err)
		}
	}
	if _, err := m.Cache("x", nil); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("Cache with a nil cache: %v, want ErrInvalid", err)
	}
	if _, ok := value(t, reg, "coord_cache_hits_total", "cache", "x"); ok {
		t.Error("a refused cache was recorded")
	}
	// A nil Middleware records nothing and its stop does nothing.
	var none *metrics.Middleware
	stop, err := none.Cache("x", c)
	if err != nil || stop == nil {
		t.Fatalf("nil Middleware: stop %v, %v; want a stop and nil", stop == nil, err)
	}
	stop()
}

// TestCacheOverMemory records a real near cache over a memory backend,
// through a second Middleware of the registry the backend's metrics use.
func TestCacheOverMemory(t *testing.T) {
	ctx := t.Context()
	m0, reg := newMiddleware(t, nil)
	var opener backend.Opener
	opened, err := opener.Open(ctx, backend.Config{URL: "mem://cache-metrics"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = opened.Close(context.Background()) })
	b := m0.Backend(opened)
	c, err := cache.New[string](ctx, b.Invalidator(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	m, err := metrics.New(reg, nil) // shares m0's metrics
	if err != nil {
		t.Fatal(err)
	}
	stop, err := m.Cache("users", c)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	load := func(_ context.Context, key string) (string, error) { return key, nil }
	for range 3 {
		if _, err := c.GetOrLoad(ctx, "k", load); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.GetOrLoad(ctx, "bad", func(context.Context, string) (string, error) {
		return "", errors.New("boom")
	}); err == nil {
		t.Fatal("a failing loader gave no error")
	}
	u := []string{"cache", "users"}
	expect(t, reg, 2, "coord_cache_hits_total", u...)
	expect(t, reg, 2, "coord_cache_misses_total", u...)
	expect(t, reg, 2, "coord_cache_loads_total", u...)
	expect(t, reg, 1, "coord_cache_load_errors_total", u...)
	expect(t, reg, 1, "coord_cache_entries", u...)
	c.Purge()
	expect(t, reg, 1, "coord_cache_purges_total", "cache", "users", "reason", "local")
	expect(t, reg, 0, "coord_cache_entries", u...)
	lint(t, reg)
}

// TestCacheStopDuringScrapes records and stops caches while the registry
// is scraped: the hits counter of a name never goes down, and ends at
// the sum of every cache recorded under it.
func TestCacheStopDuringScrapes(t *testing.T) {
	m, reg := newMiddleware(t, nil)
	const caches = 50
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range caches {
			stop, err := m.Cache("c", &statsOf{s: cache.Stats{Hits: uint64(i + 1), Entries: 1}})
			if err != nil {
				t.Error(err)
				return
			}
			if i%2 == 0 {
				stop()
			}
		}
	})
	finished := waitDone(&wg)
	last := 0.0
	for done := false; !done; {
		select {
		case <-finished:
			done = true
		default:
		}
		v, _ := value(t, reg, "coord_cache_hits_total", "cache", "c")
		if v < last {
			t.Fatalf("cache_hits_total went down from %v to %v", last, v)
		}
		last = v
	}
	expect(t, reg, caches*(caches+1)/2, "coord_cache_hits_total", "cache", "c")
	expect(t, reg, caches/2, "coord_cache_entries", "cache", "c")
}

// waitDone returns a channel closed when wg's goroutines are done.
func waitDone(wg *sync.WaitGroup) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		wg.Wait()
		close(ch)
	}()
	return ch
}
