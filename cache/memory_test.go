package cache

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/internal/coordtest"
)

// cluster is n memory nodes on one hub, each with a near cache, all
// closed at the end of the test.
type cluster struct {
	nodes  []*memory.Backend
	caches []*Cache[string]
}

func newCluster(t *testing.T, n int, opts *Options, nopts *memory.Options) *cluster {
	t.Helper()
	hub := memory.NewHub(nil)
	cl := &cluster{}
	for i := range n {
		o := memory.Options{InstanceID: fmt.Sprintf("node-%c", 'a'+i)}
		if nopts != nil {
			o.QueueSize, o.ReconnectDelay = nopts.QueueSize, nopts.ReconnectDelay
		}
		node := hub.New(&o)
		t.Cleanup(func() {
			if err := node.Close(context.WithoutCancel(t.Context())); err != nil {
				t.Errorf("closing %s: %v", node.InstanceID(), err)
			}
		})
		c, err := New[string](t.Context(), node.Invalidator(), opts)
		if err != nil {
			t.Fatalf("New on %s: %v", node.InstanceID(), err)
		}
		t.Cleanup(func() { _ = c.Close() })
		cl.nodes = append(cl.nodes, node)
		cl.caches = append(cl.caches, c)
	}
	return cl
}

// fill stores key=key in every cache.
func (cl *cluster) fill(t *testing.T, keys ...string) {
	t.Helper()
	for _, c := range cl.caches {
		for _, k := range keys {
			if err := c.Set(k, k); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func missing(c *Cache[string], key string) func() bool {
	return func() bool { _, ok := c.Get(key); return !ok }
}

// Delivery deadline: loopback in-process delivery takes microseconds; 2s
// separates a lost invalidation from a busy machine.
const deliveryDeadline = 2 * time.Second

func TestMemoryCoherence(t *testing.T) {
	cl := newCluster(t, 3, nil, nil)
	a, b, c := cl.caches[0], cl.caches[1], cl.caches[2]
	cl.fill(t, "user:1", "user:2")
	if err := a.Delete(t.Context(), "user:1"); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, a, "user:1")
	coordtest.Eventually(t, deliveryDeadline, missing(b, "user:1"), "B evicted user:1")
	coordtest.Eventually(t, deliveryDeadline, missing(c, "user:1"), "C evicted user:1")
	for _, x := range cl.caches {
		mustGet(t, x, "user:2", "user:2")
	}
	// The sender does not hear its own invalidation.
	if st := a.Stats(); st.RemoteInvalidations != 0 {
		t.Fatalf("A received its own invalidation: %+v", st)
	}
	if st := b.Stats(); st.RemoteInvalidations != 1 {
		t.Fatalf("B remote invalidations: got %d, want 1", st.RemoteInvalidations)
	}
}

func TestMemoryPatternGlob(t *testing.T) {
	cl := newCluster(t, 2, nil, nil)
	a, b := cl.caches[0], cl.caches[1]
	cl.fill(t, "user:1", "user:a/b", "session:1", "users")
	if err := a.DeletePattern(t.Context(), "user:*"); err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, deliveryDeadline, missing(b, "user:a/b"), "B evicted user:a/b")
	for _, x := range cl.caches {
		mustMiss(t, x, "user:1")
		mustMiss(t, x, "user:a/b")
		mustGet(t, x, "session:1", "session:1")
		mustGet(t, x, "users", "users")
	}
}

// A slow load on B and an invalidation from A during it: B's caller gets
// the loaded value, but B does not cache it.
func TestMemoryLoadRace(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(a *Cache[string]) error
	}{
		{"key", func(a *Cache[string]) error { return a.Delete(context.Background(), "user:1") }},
		{"pattern", func(a *Cache[string]) error { return a.DeletePattern(context.Background(), "user:*") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t, 2, nil, nil)
			a, b := cl.caches[0], cl.caches[1]
			g := newGate()
			got := make(chan string, 1)
			go func() {
				v, err := b.GetOrLoad(t.Context(), "user:1", g.load)
				if err != nil {
					t.Error(err)
				}
				got <- v
			}()
			waitStarted(t, g)
			if err := tc.send(a); err != nil {
				t.Fatal(err)
			}
			coordtest.Eventually(t, deliveryDeadline, func() bool { return b.Stats().RemoteInvalidations == 1 }, "B received the invalidation")
			close(g.release)
			if v := <-got; v != "user:1#1" {
				t.Fatalf("B's caller got %q, want the loaded value", v)
			}
			mustMiss(t, b, "user:1")
			if st := b.Stats(); st.Discarded != 1 {
				t.Fatalf("B discarded: got %d, want 1", st.Discarded)
			}
		})
	}
}

// A cut subscription (a reconnect) ends in a PurgeAll that empties the
// cache and is counted; an invalidation sent during the cut is not served
// stale afterwards.
func TestMemoryReconnectPurges(t *testing.T) {
	cl := newCluster(t, 2, nil, &memory.Options{ReconnectDelay: 20 * time.Millisecond})
	a, b := cl.caches[0], cl.caches[1]
	cl.fill(t, "user:1", "user:2")
	cl.nodes[1].CutSubscription()
	if err := a.Delete(t.Context(), "user:1"); err != nil { // lost for B
		t.Fatal(err)
	}
	coordtest.Eventually(t, deliveryDeadline, func() bool { return b.Stats().Purges == 1 }, "B purged after the reconnect")
	mustMiss(t, b, "user:1")
	mustMiss(t, b, "user:2")
	if n := b.Len(); n != 0 {
		t.Fatalf("B holds %d entries after the purge", n)
	}
	mustGet(t, a, "user:2", "user:2")
	// Delivery resumed.
	if err := b.Set("user:3", "x"); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(t.Context(), "user:3"); err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, deliveryDeadline, missing(b, "user:3"), "B evicted user:3 after the reconnect")
}

// A flood that overflows B's small subscription queue while B's handler
// is stuck ends in a counted purge, never a silent skip; a load running
// meanwhile is not cached.
func TestMemoryFloodOverflowPurges(t *testing.T) {
	cl := newCluster(t, 2, &Options{QueueSize: 4}, nil)
	a, b := cl.caches[0], cl.caches[1]
	cl.fill(t, "keep:1", "keep:2")

	// Hold B's handler: with a load in flight, applying an invalidation
	// takes b.mu, which the test holds.
	g := newGate()
	got := make(chan string, 1)
	go func() {
		v, _ := b.GetOrLoad(t.Context(), "loading", g.load)
		got <- v
	}()
	waitStarted(t, g)
	b.mu.Lock()
	const flood = 1000
	for i := range flood {
		if err := a.Delete(t.Context(), fmt.Sprintf("user:%d", i)); err != nil {
			b.mu.Unlock()
			t.Fatal(err)
		}
	}
	b.mu.Unlock()
	coordtest.Eventually(t, deliveryDeadline, func() bool { return b.Stats().Purges >= 1 }, "B purged after the overflow")
	mustMiss(t, b, "keep:1")
	mustMiss(t, b, "keep:2")
	if dropped := cl.nodes[1].Invalidator().Stats().Dropped; dropped == 0 {
		t.Fatalf("the flood overflowed nothing: %+v", cl.nodes[1].Invalidator().Stats())
	}
	if st := b.Stats(); st.RemoteInvalidations >= flood {
		t.Fatalf("B stats %+v: want fewer than %d invalidations applied, and a purge", st, flood)
	}
	close(g.release)
	if v := <-got; v != "loading#1" {
		t.Fatalf("B's caller got %q", v)
	}
	mustMiss(t, b, "loading")
}

// Closing the backend under a cache ends its subscription: the cache
// empties and reports ErrClosed rather than serve what it can no longer
// hear invalidations for.
func TestMemoryBackendClosed(t *testing.T) {
	cl := newCluster(t, 1, nil, nil)
	c := cl.caches[0]
	cl.fill(t, "k")
	if err := cl.nodes[0].Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, c, "k")
	if err := c.Set("k", "v"); err == nil {
		t.Fatal("Set after the backend closed: no error")
	} else if !isClosed(err) {
		t.Fatalf("Set after the backend closed: %v, want ErrClosed", err)
	}
}

func isClosed(err error) bool { return errors.Is(err, coord.ErrClosed) }
