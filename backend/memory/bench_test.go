package memory

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

func benchNode(b *testing.B) *Backend {
	b.Helper()
	n := NewHub(nil).New(nil)
	b.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

// BenchmarkAcquireRelease is one uncontended Acquire and Release.
func BenchmarkAcquireRelease(b *testing.B) {
	n := benchNode(b)
	ctx := context.Background()
	lk := n.Locker()
	b.ReportAllocs()
	for b.Loop() {
		l, err := lk.Acquire(ctx, "res")
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAcquireReleaseAutoRenew is the same with auto-renew and Done,
// as WithLock uses it.
func BenchmarkAcquireReleaseAutoRenew(b *testing.B) {
	n := benchNode(b)
	ctx := context.Background()
	lk := n.Locker()
	opt := coord.WithAutoRenew()
	b.ReportAllocs()
	for b.Loop() {
		l, err := lk.Acquire(ctx, "res", opt)
		if err != nil {
			b.Fatal(err)
		}
		_ = l.Done()
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAcquireContended has goroutines on two nodes take turns on one
// resource; each Acquire that finds it held waits for the hand-off.
func BenchmarkAcquireContended(b *testing.B) {
	hub := NewHub(nil)
	nodes := []*Backend{hub.New(nil), hub.New(nil)}
	b.Cleanup(func() {
		for _, n := range nodes {
			_ = n.Close(context.Background())
		}
	})
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		lk := nodes[next.Add(1)%2].Locker()
		for pb.Next() {
			l, err := lk.Acquire(ctx, "res", coord.WithWait(time.Second))
			if err != nil {
				b.Error(err)
				return
			}
			if err := l.Release(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func tenFields() map[string]any {
	data := make(map[string]any, 10)
	for i := range 10 {
		data["field"+strconv.Itoa(i)] = fmt.Sprintf("value number %d of the session", i)
	}
	data["field9"] = int64(1234567890123456789)
	return data
}

// BenchmarkSessionGet reads a session of 10 fields.
func BenchmarkSessionGet(b *testing.B) {
	st := benchNode(b).Sessions()
	ctx := context.Background()
	s, err := st.Create(ctx, "user", tenFields())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Get(ctx, s.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionTouch slides a session of 10 fields among 10,000.
func BenchmarkSessionTouch(b *testing.B) {
	st := benchNode(b).Sessions()
	ctx := context.Background()
	var s *coord.Session
	for i := range 10000 {
		var err error
		if s, err = st.Create(ctx, "user"+strconv.Itoa(i%100), tenFields()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Touch(ctx, s.ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionUpdate merges two fields (one set, one deleted).
func BenchmarkSessionUpdate(b *testing.B) {
	st := benchNode(b).Sessions()
	ctx := context.Background()
	s, err := st.Create(ctx, "user", tenFields())
	if err != nil {
		b.Fatal(err)
	}
	upd := map[string]any{"field1": 42, "gone": nil}
	b.ReportAllocs()
	for b.Loop() {
		if err := st.Update(ctx, s.ID, upd); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionCreate creates sessions of 10 fields.
func BenchmarkSessionCreate(b *testing.B) {
	st := benchNode(b).Sessions()
	ctx := context.Background()
	data := tenFields()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Create(ctx, "user", data); err != nil {
			b.Fatal(err)
		}
	}
}

// threeNodes returns a publisher and three other nodes, each with one
// subscriber that counts on got.
func threeNodes(b *testing.B, sub func(n *Backend, got *atomic.Int64)) (*Backend, *atomic.Int64) {
	hub := NewHub(nil)
	pub := hub.New(nil)
	nodes := []*Backend{pub}
	got := new(atomic.Int64)
	for range 3 {
		n := hub.New(nil)
		nodes = append(nodes, n)
		sub(n, got)
	}
	b.Cleanup(func() {
		for _, n := range nodes {
			_ = n.Close(context.Background())
		}
	})
	return pub, got
}

// BenchmarkPublishDeliver3Nodes is the latency of one event from Publish
// until the subscribers on three other nodes have all received it.
func BenchmarkPublishDeliver3Nodes(b *testing.B) {
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	pub, got := threeNodes(b, func(n *Backend, got *atomic.Int64) {
		_, err := n.Events().Subscribe(context.Background(), "t", func(coord.Event) {
			if got.Add(1)%3 == 0 {
				mu.Lock()
				cond.Signal()
				mu.Unlock()
			}
		})
		if err != nil {
			b.Fatal(err)
		}
	})
	ctx := context.Background()
	b.ReportAllocs()
	var want int64
	for b.Loop() {
		want += 3
		if err := pub.Events().Publish(ctx, "t", 1); err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		for got.Load() < want {
			cond.Wait()
		}
		mu.Unlock()
	}
}

// BenchmarkPublishThroughput3Nodes publishes events back to back to three
// other nodes and waits for every delivery at the end.
func BenchmarkPublishThroughput3Nodes(b *testing.B) {
	pub, got := threeNodes(b, func(n *Backend, got *atomic.Int64) {
		_, err := n.Events().Subscribe(context.Background(), "t", func(coord.Event) { got.Add(1) }, coord.WithQueueSize(1<<20))
		if err != nil {
			b.Fatal(err)
		}
	})
	ctx := context.Background()
	b.ReportAllocs()
	sent := int64(0)
	for b.Loop() {
		if err := pub.Events().Publish(ctx, "t", 1); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	for got.Load() < 3*sent {
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkInvalidate publishes key invalidations to three other nodes
// (subscribed with OnlyKey on another key, so they are filtered out).
func BenchmarkInvalidate(b *testing.B) {
	pub, _ := threeNodes(b, func(n *Backend, got *atomic.Int64) {
		_, err := n.Invalidator().Subscribe(context.Background(), func(coord.Invalidation) { got.Add(1) }, coord.OnlyKey("other"))
		if err != nil {
			b.Fatal(err)
		}
	})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := pub.Invalidator().Invalidate(ctx, "user:1", nil); err != nil {
			b.Fatal(err)
		}
	}
}
