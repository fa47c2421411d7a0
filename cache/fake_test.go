package cache

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/coordtest"
)

// fakeInvalidator is a coord.Invalidator that records what is published
// and lets a test deliver invalidations by hand, on the test's goroutine.
type fakeInvalidator struct {
	mu           sync.Mutex
	subs         []*fakeSub
	sent         []coord.Invalidation
	subscribeErr error
}

var _ coord.Invalidator = (*fakeInvalidator)(nil)

type fakeSub struct {
	fn   func(coord.Invalidation)
	opts coord.SubscribeOptions
	done chan struct{}
	once sync.Once
	mu   sync.Mutex // held while fn runs, so that Unsubscribe waits for it
}

func (s *fakeSub) Unsubscribe() {
	s.once.Do(func() {
		s.mu.Lock()
		close(s.done)
		s.mu.Unlock()
	})
}

func (s *fakeSub) Done() <-chan struct{} { return s.done }

func (f *fakeInvalidator) Invalidate(_ context.Context, key string, _ any) error {
	if err := driver.ValidateName("key", key); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, coord.Invalidation{Kind: coord.KeyInvalidation, Key: key})
	return nil
}

func (f *fakeInvalidator) InvalidatePattern(_ context.Context, glob string, _ any) error {
	if err := driver.ValidateGlob(glob); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, coord.Invalidation{Kind: coord.PatternInvalidation, Key: glob})
	return nil
}

func (f *fakeInvalidator) Subscribe(_ context.Context, fn func(coord.Invalidation), opts ...coord.SubscribeOption) (coord.Subscription, error) {
	o, err := driver.NewSubscribeOptions(opts...)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subscribeErr != nil {
		return nil, f.subscribeErr
	}
	s := &fakeSub{fn: fn, opts: o, done: make(chan struct{})}
	f.subs = append(f.subs, s)
	return s, nil
}

func (f *fakeInvalidator) Stats() coord.InvalidatorStats { return coord.InvalidatorStats{} }

// deliver hands inv to every live subscriber, one after the other.
func (f *fakeInvalidator) deliver(inv coord.Invalidation) {
	f.mu.Lock()
	subs := append([]*fakeSub(nil), f.subs...)
	f.mu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		select {
		case <-s.done:
		default:
			s.fn(inv)
		}
		s.mu.Unlock()
	}
}

func (f *fakeInvalidator) sentList() []coord.Invalidation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]coord.Invalidation(nil), f.sent...)
}

func (f *fakeInvalidator) sub(t *testing.T) *fakeSub {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) != 1 {
		t.Fatalf("subscriptions: got %d, want 1", len(f.subs))
	}
	return f.subs[0]
}

func keyInv(key string) coord.Invalidation {
	return coord.Invalidation{Kind: coord.KeyInvalidation, Key: key, InstanceID: "other", Timestamp: time.Now()}
}

func patternInv(glob string) coord.Invalidation {
	return coord.Invalidation{Kind: coord.PatternInvalidation, Key: glob, InstanceID: "other", Timestamp: time.Now()}
}

func purgeInv(reason string) coord.Invalidation {
	return coord.Invalidation{Kind: coord.PurgeAll, Reason: reason, Timestamp: time.Now()}
}

// newFake returns a cache over a fake Invalidator, closed at the end of
// the test.
func newFake[V any](t *testing.T, opts *Options) (*Cache[V], *fakeInvalidator) {
	t.Helper()
	f := &fakeInvalidator{}
	c, err := New[V](t.Context(), f, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, f
}

// gate is a loader whose calls block until released; it counts calls and
// reports each start.
type gate struct {
	mu      sync.Mutex
	calls   int
	started chan string
	release chan struct{}
	value   func(call int, key string) string
}

func newGate() *gate {
	return &gate{
		started: make(chan string, 100),
		release: make(chan struct{}),
		value:   func(call int, key string) string { return fmt.Sprintf("%s#%d", key, call) },
	}
}

func (g *gate) load(ctx context.Context, key string) (string, error) {
	g.mu.Lock()
	g.calls++
	n := g.calls
	g.mu.Unlock()
	g.started <- key
	select {
	case <-g.release:
		return g.value(n, key), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (g *gate) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls
}

func waitStarted(t *testing.T, g *gate) string {
	t.Helper()
	select {
	case k := <-g.started:
		return k
	case <-time.After(5 * time.Second):
		t.Fatal("the loader did not start within 5s")
		return ""
	}
}

// waitJoined waits until n callers have joined the running load of key.
func waitJoined[V any](t *testing.T, c *Cache[V], key string, n int) {
	t.Helper()
	coordtest.Eventually(t, 5*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		l := c.loads[key]
		return l != nil && l.waiters >= n
	}, "%d callers joined the load of %s", n, key)
}
