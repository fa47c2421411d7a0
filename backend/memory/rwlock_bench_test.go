package memory

import (
	"context"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// waitOpt makes a benchmark's acquisition wait for its turn.
var waitOpt = coord.WithWait(time.Second)

// BenchmarkRLockRelease is one uncontended read lease taken and released.
func BenchmarkRLockRelease(b *testing.B) {
	n := benchNode(b)
	ctx := context.Background()
	rw := n.RWLocker()
	b.ReportAllocs()
	for b.Loop() {
		l, err := rw.RLock(ctx, "res")
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRWLockRelease is one uncontended write lease taken and
// released.
func BenchmarkRWLockRelease(b *testing.B) {
	n := benchNode(b)
	ctx := context.Background()
	rw := n.RWLocker()
	b.ReportAllocs()
	for b.Loop() {
		l, err := rw.Lock(ctx, "res")
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRLockReleaseShared is a read pair beside another reader that
// holds on, so the resource's state stays (a read pair on a busy
// resource).
func BenchmarkRLockReleaseShared(b *testing.B) {
	n := benchNode(b)
	ctx := context.Background()
	rw := n.RWLocker()
	if _, err := rw.RLock(ctx, "res"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		l, err := rw.RLock(ctx, "res")
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPermitAcquireRelease is one uncontended permit of four taken
// and released.
func BenchmarkPermitAcquireRelease(b *testing.B) {
	n := benchNode(b)
	ctx := context.Background()
	s := n.Semaphores()
	b.ReportAllocs()
	for b.Loop() {
		l, err := s.Acquire(ctx, "res", 4)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCampaignResign is one uncontended leadership taken and
// resigned.
func BenchmarkCampaignResign(b *testing.B) {
	n := benchNode(b)
	ctx := context.Background()
	e := n.Elector()
	b.ReportAllocs()
	for b.Loop() {
		l, err := e.Campaign(ctx, "el", "node")
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPermitParallel has every goroutine take and release permits of
// one 4-permit semaphore, waiting when all four are held.
func BenchmarkPermitParallel(b *testing.B) {
	n := benchNode(b)
	ctx := context.Background()
	s := n.Semaphores()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l, err := s.Acquire(ctx, "res", 4, waitOpt)
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
