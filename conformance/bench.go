package conformance

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// BenchInstances makes instances of one backend for [Benchmark]: each call
// returns a new instance sharing state with the ones made before by the
// same function, and closes it when b ends.
type BenchInstances func(b *testing.B) coord.Backend

// Benchmark measures every operation of every interface on one backend,
// one sub-benchmark per operation, with allocations reported, so the
// figures of all backends line up by name:
//
//	func BenchmarkOperations(b *testing.B) {
//		conformance.Benchmark(b, func(b *testing.B) conformance.BenchInstances {
//			hub := memory.NewHub(nil)
//			return func(b *testing.B) coord.Backend {
//				n := hub.New(nil)
//				b.Cleanup(func() { _ = n.Close(context.Background()) })
//				return n
//			}
//		})
//	}
//
// newInstances is called once per sub-benchmark; delivery benchmarks use
// two instances from one call. Run with -bench Operations -benchmem.
func Benchmark(b *testing.B, newInstances func(b *testing.B) BenchInstances) {
	bb := bencher{newInstances: newInstances, ctx: context.Background(), data: benchData()}
	bb.locker(b)
	bb.leases(b)
	bb.handoff(b)
	bb.sessions(b)
	bb.sessionLifecycle(b)
	bb.pubsub(b)
}

// bencher holds what the operation benchmarks share.
type bencher struct {
	newInstances func(b *testing.B) BenchInstances
	ctx          context.Context
	data         map[string]any
}

// one returns a fresh instance on a fresh shared state.
func (bb bencher) one(b *testing.B) coord.Backend { return bb.newInstances(b)(b) }

// benchData is the session data the session benchmarks store: ten string
// fields and an int64 that must round-trip.
func benchData() map[string]any {
	data := map[string]any{}
	for i := range 10 {
		data["field"+strconv.Itoa(i)] = "value-" + strconv.Itoa(i)
	}
	data["id"] = int64(1234567890123456789)
	return data
}

func benchMust(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// locker benchmarks acquiring and releasing a lease.
func (bb bencher) locker(b *testing.B) {
	ctx, one := bb.ctx, bb.one
	b.Run("Locker/AcquireRelease", func(b *testing.B) {
		l := one(b).Locker()
		b.ReportAllocs()
		for b.Loop() {
			lk, err := l.Acquire(ctx, "bench", coord.WithRetry(0, 0))
			benchMust(b, err)
			benchMust(b, lk.Release(ctx))
		}
	})
	b.Run("Locker/AcquireReleaseAutoRenew", func(b *testing.B) {
		l := one(b).Locker()
		b.ReportAllocs()
		for b.Loop() {
			lk, err := l.Acquire(ctx, "bench", coord.WithRetry(0, 0), coord.WithAutoRenew())
			benchMust(b, err)
			benchMust(b, lk.Release(ctx))
		}
	})
}

// leases benchmarks the calls on a held lease and the Locker's reads.
func (bb bencher) leases(b *testing.B) {
	ctx, one := bb.ctx, bb.one
	withLock := func(name string, op func(b *testing.B, l coord.Locker, lk coord.Lock)) {
		b.Run("Locker/"+name, func(b *testing.B) {
			l := one(b).Locker()
			lk, err := l.Acquire(ctx, "bench", coord.WithTTL(time.Minute))
			benchMust(b, err)
			b.Cleanup(func() { _ = lk.Release(ctx) })
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				op(b, l, lk)
			}
		})
	}
	withLock("Extend", func(b *testing.B, _ coord.Locker, lk coord.Lock) { benchMust(b, lk.Extend(ctx, time.Minute)) })
	withLock("TTL", func(b *testing.B, _ coord.Locker, lk coord.Lock) {
		_, err := lk.TTL(ctx)
		benchMust(b, err)
	})
	withLock("Locked", func(b *testing.B, l coord.Locker, _ coord.Lock) {
		_, err := l.Locked(ctx, "bench")
		benchMust(b, err)
	})
	withLock("Held", func(b *testing.B, l coord.Locker, _ coord.Lock) {
		if len(l.Held()) != 1 {
			b.Fatal("Held lost the lease")
		}
	})
}

// handoff benchmarks force releases and a lease passing between two
// instances.
func (bb bencher) handoff(b *testing.B) {
	ctx, one, newInstances := bb.ctx, bb.one, bb.newInstances
	b.Run("Locker/ForceRelease", func(b *testing.B) {
		l := one(b).Locker()
		b.ReportAllocs()
		for b.Loop() {
			_, err := l.ForceRelease(ctx, "bench-free")
			benchMust(b, err)
		}
	})
	b.Run("Locker/Handoff", func(b *testing.B) {
		ins := newInstances(b)
		a, c := ins(b).Locker(), ins(b).Locker()
		b.ReportAllocs()
		for b.Loop() {
			lk, err := a.Acquire(ctx, "bench", coord.WithWait(time.Second))
			benchMust(b, err)
			got := make(chan error, 1)
			go func() {
				lk2, err := c.Acquire(ctx, "bench", coord.WithWait(time.Second))
				if err == nil {
					err = lk2.Release(ctx)
				}
				got <- err
			}()
			benchMust(b, lk.Release(ctx))
			benchMust(b, <-got)
		}
	})
}

// sessions benchmarks the SessionStore.
func (bb bencher) sessions(b *testing.B) {
	ctx, one, data := bb.ctx, bb.one, bb.data
	session := func(b *testing.B) (coord.SessionStore, *coord.Session) {
		s := one(b).Sessions()
		sess, err := s.Create(ctx, "user-1", data)
		benchMust(b, err)
		return s, sess
	}
	b.Run("Sessions/Create", func(b *testing.B) {
		s := one(b).Sessions()
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			n++
			_, err := s.Create(ctx, "user-"+strconv.Itoa(n%64), data, coord.WithIdleTTL(time.Minute))
			benchMust(b, err)
		}
	})
	sessOp := func(name string, op func(b *testing.B, s coord.SessionStore, sess *coord.Session)) {
		b.Run("Sessions/"+name, func(b *testing.B) {
			s, sess := session(b)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				op(b, s, sess)
			}
		})
	}
	sessOp("Get", func(b *testing.B, s coord.SessionStore, sess *coord.Session) {
		_, err := s.Get(ctx, sess.ID)
		benchMust(b, err)
	})
	sessOp("Touch", func(b *testing.B, s coord.SessionStore, sess *coord.Session) {
		_, err := s.Touch(ctx, sess.ID)
		benchMust(b, err)
	})
	sessOp("Update", func(b *testing.B, s coord.SessionStore, sess *coord.Session) {
		benchMust(b, s.Update(ctx, sess.ID, map[string]any{"field0": "changed", "field9": nil}))
	})
	sessOp("Exists", func(b *testing.B, s coord.SessionStore, sess *coord.Session) {
		ok, err := s.Exists(ctx, sess.ID)
		benchMust(b, err)
		if !ok {
			b.Fatal("session vanished")
		}
	})
	sessOp("Extend", func(b *testing.B, s coord.SessionStore, sess *coord.Session) {
		benchMust(b, s.Extend(ctx, sess.ID, time.Hour))
	})
	sessOp("ByUser", func(b *testing.B, s coord.SessionStore, _ *coord.Session) {
		_, err := s.ByUser(ctx, "user-1")
		benchMust(b, err)
	})
	sessOp("Count", func(b *testing.B, s coord.SessionStore, _ *coord.Session) {
		_, err := s.Count(ctx)
		benchMust(b, err)
	})
	sessOp("Stats", func(b *testing.B, s coord.SessionStore, _ *coord.Session) {
		_, err := s.Stats(ctx)
		benchMust(b, err)
	})
	sessOp("Cleanup", func(b *testing.B, s coord.SessionStore, _ *coord.Session) {
		_, err := s.Cleanup(ctx)
		benchMust(b, err)
	})
}

// sessionLifecycle benchmarks the calls that make and end sessions.
func (bb bencher) sessionLifecycle(b *testing.B) {
	ctx, one, data := bb.ctx, bb.one, bb.data
	b.Run("Sessions/Rotate", func(b *testing.B) {
		s := one(b).Sessions()
		sess, err := s.Create(ctx, "user-1", data)
		benchMust(b, err)
		b.ReportAllocs()
		for b.Loop() {
			next, err := s.Rotate(ctx, sess.ID)
			benchMust(b, err)
			sess = next
		}
	})
	b.Run("Sessions/CreateDelete", func(b *testing.B) {
		s := one(b).Sessions()
		b.ReportAllocs()
		for b.Loop() {
			sess, err := s.Create(ctx, "user-1", data)
			benchMust(b, err)
			benchMust(b, s.Delete(ctx, sess.ID))
		}
	})
	b.Run("Sessions/CreateRevoke", func(b *testing.B) {
		s := one(b).Sessions()
		b.ReportAllocs()
		for b.Loop() {
			sess, err := s.Create(ctx, "user-1", data)
			benchMust(b, err)
			benchMust(b, s.Revoke(ctx, "user-1", sess.Handle))
		}
	})
	b.Run("Sessions/CreateDeleteByUser", func(b *testing.B) {
		s := one(b).Sessions()
		b.ReportAllocs()
		for b.Loop() {
			_, err := s.Create(ctx, "user-2", data)
			benchMust(b, err)
			n, err := s.DeleteByUser(ctx, "user-2")
			benchMust(b, err)
			if n != 1 {
				b.Fatalf("DeleteByUser ended %d sessions, want 1", n)
			}
		}
	})
}

// pubsub benchmarks publishing alone, and publish to delivery on another
// instance, one message in flight at a time.
func (bb bencher) pubsub(b *testing.B) {
	ctx, one, newInstances := bb.ctx, bb.one, bb.newInstances
	b.Run("Invalidator/Invalidate", func(b *testing.B) {
		inv := one(b).Invalidator()
		b.ReportAllocs()
		for b.Loop() {
			benchMust(b, inv.Invalidate(ctx, "user:1:profile", nil))
		}
	})
	b.Run("Invalidator/InvalidatePattern", func(b *testing.B) {
		inv := one(b).Invalidator()
		b.ReportAllocs()
		for b.Loop() {
			benchMust(b, inv.InvalidatePattern(ctx, "user:1:*", nil))
		}
	})
	b.Run("Invalidator/Deliver", func(b *testing.B) {
		ins := newInstances(b)
		from, to := ins(b).Invalidator(), ins(b).Invalidator()
		got := make(chan struct{}, 1)
		var skip atomic.Bool
		sub, err := to.Subscribe(ctx, func(i coord.Invalidation) {
			if i.Kind == coord.KeyInvalidation && !skip.Load() {
				got <- struct{}{}
			}
		})
		benchMust(b, err)
		b.Cleanup(func() { skip.Store(true); sub.Unsubscribe() })
		deliver(b, got, func() error { return from.Invalidate(ctx, "user:1:profile", nil) })
	})
	b.Run("Events/Publish", func(b *testing.B) {
		bus := one(b).Events()
		b.ReportAllocs()
		for b.Loop() {
			benchMust(b, bus.Publish(ctx, "bench", map[string]any{"id": 1}))
		}
	})
	b.Run("Events/Deliver", func(b *testing.B) {
		ins := newInstances(b)
		from, to := ins(b).Events(), ins(b).Events()
		got := make(chan struct{}, 1)
		var skip atomic.Bool
		sub, err := to.Subscribe(ctx, "bench", func(coord.Event) {
			if !skip.Load() {
				got <- struct{}{}
			}
		})
		benchMust(b, err)
		b.Cleanup(func() { skip.Store(true); sub.Unsubscribe() })
		deliver(b, got, func() error { return from.Publish(ctx, "bench", map[string]any{"id": 1}) })
	})
}

// deliver measures publish-to-delivery: it publishes until the subscriber
// is seen to be live, then times one message at a time.
func deliver(b *testing.B, got <-chan struct{}, publish func() error) {
	b.Helper()
	// The subscription may need a moment to be live on the wire.
	deadline := time.Now().Add(5 * time.Second)
	for ready := false; !ready; {
		if err := publish(); err != nil {
			b.Fatal(err)
		}
		select {
		case <-got:
			ready = true
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				b.Fatal("no delivery within 5s")
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := publish(); err != nil {
			b.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			b.Fatal("message not delivered within 5s")
		}
	}
}
