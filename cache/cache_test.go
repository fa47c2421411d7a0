package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/coordtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func mustGet[V comparable](t *testing.T, c *Cache[V], key string, want V) {
	t.Helper()
	got, ok := c.Get(key)
	if !ok || got != want {
		t.Fatalf("Get(%q) = %v, %v; want %v, true", key, got, ok, want)
	}
}

func mustMiss[V any](t *testing.T, c *Cache[V], key string) {
	t.Helper()
	if got, ok := c.Get(key); ok {
		t.Fatalf("Get(%q) = %v, true; want a miss", key, got)
	}
}

func TestSetGetDelete(t *testing.T) {
	c, f := newFake[int](t, nil)
	mustMiss(t, c, "a")
	if err := c.Set("a", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Set("b", 2); err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, "a", 1)
	if err := c.Set("a", 3); err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, "a", 3)
	if err := c.Delete(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, c, "a")
	mustGet(t, c, "b", 2)
	sent := f.sentList()
	if len(sent) != 1 || sent[0].Kind != coord.KeyInvalidation || sent[0].Key != "a" {
		t.Fatalf("broadcast: got %+v, want one key invalidation of a", sent)
	}
	st := c.Stats()
	if st.Hits != 3 || st.Misses != 2 || st.Entries != 1 {
		t.Fatalf("stats: got %+v, want 3 hits, 2 misses, 1 entry", st)
	}
	c.Purge()
	mustMiss(t, c, "b")
	if st := c.Stats(); st.Purges != 0 {
		t.Fatalf("a local Purge counted as a remote purge: %+v", st)
	}
}

func TestDeletePatternRedisGlob(t *testing.T) {
	c, f := newFake[string](t, nil)
	keys := []string{"user:1", "user:a/b", "user:", "session:1", "users", "xuser:1"}
	for _, k := range keys {
		if err := c.Set(k, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.DeletePattern(t.Context(), "user:*"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"user:1", "user:a/b", "user:"} {
		mustMiss(t, c, k)
	}
	for _, k := range []string{"session:1", "users", "xuser:1"} {
		mustGet(t, c, k, k)
	}
	sent := f.sentList()
	if len(sent) != 1 || sent[0].Kind != coord.PatternInvalidation || sent[0].Key != "user:*" {
		t.Fatalf("broadcast: got %+v, want one pattern invalidation of user:*", sent)
	}

	// Classes, '?' and escapes follow Redis, not path.Match.
	for _, k := range []string{"a/1", "b/2", "c/3", "*x", "ax"} {
		if err := c.Set(k, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.DeletePattern(t.Context(), "[ab]?[0-9]"); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, c, "a/1")
	mustMiss(t, c, "b/2")
	mustGet(t, c, "c/3", "c/3")
	if err := c.DeletePattern(t.Context(), `\*x`); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, c, "*x")
	mustGet(t, c, "ax", "ax")
}

func TestRemoteInvalidations(t *testing.T) {
	c, f := newFake[string](t, nil)
	for _, k := range []string{"user:1", "user:2", "user:a/b", "session:1"} {
		if err := c.Set(k, k); err != nil {
			t.Fatal(err)
		}
	}
	f.deliver(keyInv("user:1"))
	mustMiss(t, c, "user:1")
	mustGet(t, c, "user:2", "user:2")
	f.deliver(patternInv("user:*"))
	mustMiss(t, c, "user:2")
	mustMiss(t, c, "user:a/b")
	mustGet(t, c, "session:1", "session:1")
	if st := c.Stats(); st.RemoteInvalidations != 2 || st.Purges != 0 {
		t.Fatalf("stats: got %+v, want 2 remote invalidations, no purge", st)
	}
	if len(f.sentList()) != 0 {
		t.Fatalf("a remote invalidation was broadcast again: %+v", f.sentList())
	}
	f.deliver(purgeInv("overflow"))
	mustMiss(t, c, "session:1")
	if st := c.Stats(); st.Purges != 1 || st.Entries != 0 {
		t.Fatalf("stats: got %+v, want 1 purge and no entry", st)
	}
	// A kind this version does not know is treated as a purge.
	if err := c.Set("k", "v"); err != nil {
		t.Fatal(err)
	}
	f.deliver(coord.Invalidation{Kind: coord.InvalidationKind(99), Key: "x"})
	mustMiss(t, c, "k")
	if st := c.Stats(); st.Purges != 2 {
		t.Fatalf("purges: got %d, want 2", st.Purges)
	}
}

func TestBadInput(t *testing.T) {
	c, f := newFake[string](t, nil)
	ctx := t.Context()
	load := func(context.Context, string) (string, error) { return "v", nil }
	for _, key := range []string{"", strings.Repeat("k", coord.MaxNameLen+1), "a\nb", "\xff"} {
		if err := c.Set(key, "v"); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("Set(%q): got %v, want ErrInvalid", key, err)
		}
		if err := c.Delete(ctx, key); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("Delete(%q): got %v, want ErrInvalid", key, err)
		}
		if _, err := c.GetOrLoad(ctx, key, load); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("GetOrLoad(%q): got %v, want ErrInvalid", key, err)
		}
		mustMiss(t, c, key)
	}
	for _, glob := range []string{"", "user:[", `user:\`, "a\x00"} {
		if err := c.DeletePattern(ctx, glob); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("DeletePattern(%q): got %v, want ErrInvalid", glob, err)
		}
	}
	if _, err := c.GetOrLoad(ctx, "k", nil); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("GetOrLoad with a nil loader: got %v, want ErrInvalid", err)
	}
	if len(f.sentList()) != 0 || c.Len() != 0 {
		t.Fatalf("bad input changed something: sent %+v, %d entries", f.sentList(), c.Len())
	}

	for _, o := range []*Options{{MaxSize: -1}, {MaxTTL: -time.Second}, {MaxTTL: time.Microsecond}, {QueueSize: -1}} {
		if _, err := New[string](ctx, &fakeInvalidator{}, o); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("New(%+v): got %v, want ErrInvalid", *o, err)
		}
	}
	if _, err := New[string](ctx, nil, nil); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("New(nil Invalidator): got %v, want ErrInvalid", err)
	}
}

func TestSubscribeOptionsAndError(t *testing.T) {
	_, f := newFake[string](t, &Options{QueueSize: 7})
	s := f.sub(t)
	if s.opts.QueueSize != 7 || s.opts.IncludeOwn || s.opts.Key != "" {
		t.Fatalf("subscribe options: got %+v, want queue 7, no own messages, every key", s.opts)
	}
	boom := errors.New("boom")
	_, err := New[string](t.Context(), &fakeInvalidator{subscribeErr: boom}, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("New with a failing Subscribe: got %v, want it wrapped", err)
	}
}

func TestSingleFlight(t *testing.T) {
	c, _ := newFake[string](t, nil)
	g := newGate()
	const n = 20
	var wg sync.WaitGroup
	results := make(chan string, n)
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			v, err := c.GetOrLoad(t.Context(), "k", g.load)
			if err != nil {
				errs <- err
				return
			}
			results <- v
		})
	}
	waitStarted(t, g)
	// Every other caller has joined the load before it ends.
	waitJoined(t, c, "k", n-1)
	close(g.release)
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for v := range results {
		if v != "k#1" {
			t.Fatalf("a caller got %q, want k#1", v)
		}
	}
	if got := g.count(); got != 1 {
		t.Fatalf("loader calls: got %d, want 1", got)
	}
	mustGet(t, c, "k", "k#1")
	if st := c.Stats(); st.Loads != 1 || st.Discarded != 0 {
		t.Fatalf("stats: got %+v, want 1 load, nothing discarded", st)
	}
	// A hit does not load.
	v, err := c.GetOrLoad(t.Context(), "k", g.load)
	if err != nil || v != "k#1" || g.count() != 1 {
		t.Fatalf("GetOrLoad on a hit: %q, %v, %d loader calls", v, err, g.count())
	}
}

// TestLoadRace checks the placeholder rule: an invalidation that arrives
// while a value is loading stops that value from being cached.
func TestLoadRace(t *testing.T) {
	cases := []struct {
		name    string
		key     string
		disturb func(c *Cache[string], f *fakeInvalidator) error
		covers  bool
	}{
		{"remote key", "user:1", func(_ *Cache[string], f *fakeInvalidator) error { f.deliver(keyInv("user:1")); return nil }, true},
		{"remote pattern", "user:a/b", func(_ *Cache[string], f *fakeInvalidator) error { f.deliver(patternInv("user:*")); return nil }, true},
		{"remote purge", "user:1", func(_ *Cache[string], f *fakeInvalidator) error { f.deliver(purgeInv("reconnect")); return nil }, true},
		{"local delete", "user:1", func(c *Cache[string], _ *fakeInvalidator) error { return c.Delete(context.Background(), "user:1") }, true},
		{"local pattern", "user:1", func(c *Cache[string], _ *fakeInvalidator) error {
			return c.DeletePattern(context.Background(), "user:?")
		}, true},
		{"local purge", "user:1", func(c *Cache[string], _ *fakeInvalidator) error { c.Purge(); return nil }, true},
		{"other key", "user:1", func(_ *Cache[string], f *fakeInvalidator) error { f.deliver(keyInv("user:2")); return nil }, false},
		{"other pattern", "user:1", func(_ *Cache[string], f *fakeInvalidator) error { f.deliver(patternInv("session:*")); return nil }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, f := newFake[string](t, nil)
			g := newGate()
			type result struct {
				v   string
				err error
			}
			done := make(chan result, 1)
			go func() {
				v, err := c.GetOrLoad(t.Context(), tc.key, g.load)
				done <- result{v, err}
			}()
			waitStarted(t, g)
			if err := tc.disturb(c, f); err != nil {
				t.Fatal(err)
			}
			close(g.release)
			r := <-done
			if r.err != nil || r.v != tc.key+"#1" {
				t.Fatalf("GetOrLoad: got %q, %v; want the loaded value", r.v, r.err)
			}
			if !tc.covers {
				mustGet(t, c, tc.key, tc.key+"#1")
				return
			}
			mustMiss(t, c, tc.key)
			if st := c.Stats(); st.Discarded != 1 {
				t.Fatalf("discarded: got %d, want 1", st.Discarded)
			}
			// The next GetOrLoad loads again and caches.
			v, err := c.GetOrLoad(t.Context(), tc.key, g.load)
			if err != nil || v != tc.key+"#2" {
				t.Fatalf("GetOrLoad after the race: got %q, %v; want %s#2", v, err, tc.key)
			}
			mustGet(t, c, tc.key, tc.key+"#2")
		})
	}
}

// A Set during a load wins over the loaded value.
func TestSetDuringLoadWins(t *testing.T) {
	c, _ := newFake[string](t, nil)
	g := newGate()
	done := make(chan string, 1)
	go func() {
		v, _ := c.GetOrLoad(t.Context(), "k", g.load)
		done <- v
	}()
	waitStarted(t, g)
	if err := c.Set("k", "written"); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	if v := <-done; v != "k#1" {
		t.Fatalf("the loading caller got %q, want k#1", v)
	}
	mustGet(t, c, "k", "written")
}

// A caller arriving after an invalidation does not join the load that
// started before it: it starts its own.
func TestNoJoinAfterInvalidation(t *testing.T) {
	c, f := newFake[string](t, nil)
	first := newGate()
	go1 := make(chan string, 1)
	go func() {
		v, _ := c.GetOrLoad(t.Context(), "k", first.load)
		go1 <- v
	}()
	waitStarted(t, first)
	f.deliver(keyInv("k"))
	second := newGate()
	second.value = func(int, string) string { return "fresh" }
	close(second.release)
	// Joining the first load would wait for it; the deadline makes that
	// a failure instead of a hang.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	v, err := c.GetOrLoad(ctx, "k", second.load)
	if err != nil || v != "fresh" {
		close(first.release)
		<-go1
		t.Fatalf("GetOrLoad after the invalidation: %q, %v; want fresh from a new load", v, err)
	}
	close(first.release)
	if v := <-go1; v != "k#1" {
		t.Fatalf("the first caller got %q", v)
	}
	mustGet(t, c, "k", "fresh")
}

func TestLoaderError(t *testing.T) {
	c, _ := newFake[string](t, nil)
	boom := errors.New("boom")
	_, err := c.GetOrLoad(t.Context(), "k", func(context.Context, string) (string, error) { return "", boom })
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the loader's error", err)
	}
	mustMiss(t, c, "k")
	if st := c.Stats(); st.Loads != 1 || st.LoadErrors != 1 {
		t.Fatalf("stats: got %+v", st)
	}
}

func TestLoaderPanic(t *testing.T) {
	c, _ := newFake[string](t, nil)
	release := make(chan struct{})
	started := make(chan struct{})
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		_, _ = c.GetOrLoad(t.Context(), "k", func(context.Context, string) (string, error) {
			close(started)
			<-release
			panic("loader bug")
		})
	}()
	<-started
	waiter := make(chan error, 1)
	go func() {
		_, err := c.GetOrLoad(t.Context(), "k", func(context.Context, string) (string, error) { return "never", nil })
		waiter <- err
	}()
	waitJoined(t, c, "k", 1)
	close(release)
	if r := <-panicked; r != "loader bug" {
		t.Fatalf("the leading caller recovered %v, want the loader's panic", r)
	}
	if err := <-waiter; err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("the waiter got %v, want a panic error", err)
	}
	mustMiss(t, c, "k")
	v, err := c.GetOrLoad(t.Context(), "k", func(context.Context, string) (string, error) { return "ok", nil })
	if err != nil || v != "ok" {
		t.Fatalf("GetOrLoad after a panic: %q, %v", v, err)
	}
}

// When the leading caller's ctx ends, a waiter with a live ctx loads for
// itself instead of taking the leader's cancellation.
func TestLeaderCancelled(t *testing.T) {
	c, _ := newFake[string](t, nil)
	g := newGate()
	lctx, cancel := context.WithCancel(t.Context())
	leader := make(chan error, 1)
	go func() {
		_, err := c.GetOrLoad(lctx, "k", g.load)
		leader <- err
	}()
	waitStarted(t, g)
	waiter := make(chan string, 1)
	go func() {
		v, _ := c.GetOrLoad(t.Context(), "k", g.load)
		waiter <- v
	}()
	waitJoined(t, c, "k", 1)
	cancel()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: got %v, want context.Canceled", err)
	}
	waitStarted(t, g) // the waiter's own load
	close(g.release)
	if v := <-waiter; v != "k#2" {
		t.Fatalf("waiter: got %q, want k#2 from its own load", v)
	}
}

// A waiter whose own ctx ends stops waiting at once.
func TestWaiterCancelled(t *testing.T) {
	c, _ := newFake[string](t, nil)
	g := newGate()
	go func() { _, _ = c.GetOrLoad(t.Context(), "k", g.load) }()
	waitStarted(t, g)
	defer close(g.release)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.GetOrLoad(ctx, "k", g.load)
		errc <- err
	}()
	waitJoined(t, c, "k", 1)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a cancelled waiter still waits for the load after 2s")
	}
}

func TestMaxTTL(t *testing.T) {
	c, _ := newFake[string](t, &Options{MaxTTL: 50 * time.Millisecond})
	if err := c.Set("k", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetOrLoad(t.Context(), "l", func(context.Context, string) (string, error) { return "v", nil }); err != nil {
		t.Fatal(err)
	}
	// No invalidation comes; the entries expire by themselves.
	coordtest.Eventually(t, 3*time.Second, func() bool { _, ok := c.Get("k"); return !ok }, "set entry expired")
	coordtest.Eventually(t, 3*time.Second, func() bool { _, ok := c.Get("l"); return !ok }, "loaded entry expired")
	// The store removes them at its next clean-up (at least once a second).
	coordtest.Eventually(t, 5*time.Second, func() bool { return c.Stats().Expirations == 2 }, "expirations counted")
}

func TestMaxSize(t *testing.T) {
	const max = 100
	c, _ := newFake[int](t, &Options{MaxSize: max})
	for i := range 10 * max {
		if err := c.Set(fmt.Sprintf("k%d", i), i); err != nil {
			t.Fatal(err)
		}
	}
	coordtest.Eventually(t, 5*time.Second, func() bool { return c.Len() <= max }, "size within bound")
	if st := c.Stats(); st.Evictions < 9*max {
		t.Fatalf("evictions: got %d, want at least %d", st.Evictions, 9*max)
	}
}

func TestClose(t *testing.T) {
	c, f := newFake[string](t, nil)
	if err := c.Set("k", "v"); err != nil {
		t.Fatal(err)
	}
	g := newGate()
	loaded := make(chan string, 1)
	go func() {
		v, _ := c.GetOrLoad(t.Context(), "l", g.load)
		loaded <- v
	}()
	waitStarted(t, g)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case <-f.sub(t).Done():
	default:
		t.Fatal("Close did not unsubscribe")
	}
	mustMiss(t, c, "k")
	if err := c.Set("k", "v"); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("Set after Close: %v", err)
	}
	if err := c.Delete(t.Context(), "k"); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("Delete after Close: %v", err)
	}
	if err := c.DeletePattern(t.Context(), "k*"); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("DeletePattern after Close: %v", err)
	}
	if _, err := c.GetOrLoad(t.Context(), "k", g.load); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("GetOrLoad after Close: %v", err)
	}
	c.Purge()
	close(g.release)
	if v := <-loaded; v != "l#1" {
		t.Fatalf("the load running at Close returned %q, want l#1", v)
	}
	mustMiss(t, c, "l")
	if c.Len() != 0 {
		t.Fatalf("entries after Close: %d", c.Len())
	}
	if len(f.sentList()) != 0 {
		t.Fatalf("broadcasts after Close: %+v", f.sentList())
	}
}

// When the subscription ends without Close (the backend was closed), the
// cache can no longer hear of invalidations: it empties and stops serving.
func TestSubscriptionEnded(t *testing.T) {
	c, f := newFake[string](t, nil)
	if err := c.Set("k", "v"); err != nil {
		t.Fatal(err)
	}
	f.sub(t).Unsubscribe()
	mustMiss(t, c, "k")
	if err := c.Set("k", "v"); !errors.Is(err, coord.ErrClosed) {
		t.Fatalf("Set after the subscription ended: %v, want ErrClosed", err)
	}
	if c.Len() != 0 {
		t.Fatalf("entries kept: %d", c.Len())
	}
}

// Concurrent use under -race: writers, readers, loaders, local and remote
// invalidations at once.
func TestConcurrentUse(t *testing.T) {
	c, f := newFake[int](t, &Options{MaxSize: 64})
	keys := []string{"user:1", "user:2", "user:3", "session:1", "session:2"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := keys[(i+w)%len(keys)]
				switch i % 5 {
				case 0:
					_ = c.Set(k, i)
				case 1:
					c.Get(k)
				case 2:
					_, _ = c.GetOrLoad(t.Context(), k, func(context.Context, string) (int, error) { return i, nil })
				case 3:
					_ = c.Delete(t.Context(), k)
				case 4:
					_ = c.DeletePattern(t.Context(), "session:*")
				}
			}
		})
	}
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			switch i % 3 {
			case 0:
				f.deliver(keyInv(keys[i%len(keys)]))
			case 1:
				f.deliver(patternInv("user:*"))
			case 2:
				f.deliver(purgeInv("overflow"))
			}
		}
	})
	time.AfterFunc(300*time.Millisecond, func() { close(stop) })
	wg.Wait()
	c.mu.Lock()
	n, loading := len(c.loads), c.loading.Load()
	c.mu.Unlock()
	if n != 0 || loading != 0 {
		t.Fatalf("loads left: %d (counter %d)", n, loading)
	}
}
