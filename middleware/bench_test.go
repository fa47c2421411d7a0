package middleware_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/middleware/logging"
	"github.com/cgn-bot/coord/middleware/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// The benchmarks compare a bare memory node with the same node decorated:
//
//	bare         the memory node itself
//	metrics      metrics.Backend
//	logging-off  logging.Backend on a logger with every level disabled
//	logging-info logging.Backend on a logger at Info: successes are not
//	             written but failures would be, so operations are timed
//	             and leases decorated
//
// BenchmarkOverhead runs the same decorations over a backend that does
// nothing, which isolates their own cost from the noise of the backend.
// Run them with
//
//	go test -run '^$' -bench . -benchmem -count 6 ./middleware/
var decorations = []struct {
	name string
	wrap func(b *testing.B, next coord.Backend) coord.Backend
}{
	{"bare", func(_ *testing.B, next coord.Backend) coord.Backend { return next }},
	{"metrics", func(b *testing.B, next coord.Backend) coord.Backend {
		m, err := metrics.New(prometheus.NewRegistry(), nil)
		if err != nil {
			b.Fatal(err)
		}
		return m.Backend(next)
	}},
	{"logging-off", func(_ *testing.B, next coord.Backend) coord.Backend {
		return logging.New(slog.New(slog.DiscardHandler), nil).Backend(next)
	}},
	{"logging-info", func(_ *testing.B, next coord.Backend) coord.Backend {
		return logging.New(slog.New(slog.NewTextHandler(io.Discard, nil)), nil).Backend(next)
	}},
}

func benchEach(b *testing.B, body func(b *testing.B, be coord.Backend)) {
	for _, d := range decorations {
		b.Run(d.name, func(b *testing.B) {
			node := memory.NewHub(nil).New(nil)
			defer func() { _ = node.Close(context.Background()) }()
			body(b, d.wrap(b, node))
		})
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	benchEach(b, func(b *testing.B, be coord.Backend) {
		ctx := context.Background()
		l := be.Locker()
		b.ReportAllocs()
		for b.Loop() {
			lk, err := l.Acquire(ctx, "bench")
			if err != nil {
				b.Fatal(err)
			}
			if err := lk.Release(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSessionGet(b *testing.B) {
	benchEach(b, func(b *testing.B, be coord.Backend) {
		ctx := context.Background()
		s := be.Sessions()
		sess, err := s.Create(ctx, "user-1", map[string]any{"name": "bench", "id": int64(1) << 60})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(ctx, sess.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkInvalidate(b *testing.B) {
	benchEach(b, func(b *testing.B, be coord.Backend) {
		ctx := context.Background()
		inv := be.Invalidator()
		b.ReportAllocs()
		for b.Loop() {
			if err := inv.Invalidate(ctx, "user:42:profile", nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// stub is a backend whose operations do nothing, so that BenchmarkOverhead
// measures the decorators' own cost without the noise of a real backend.
type stub struct{ coord.Backend }

type stubLocker struct{ coord.Locker }
type stubLock struct{ coord.Lock }
type stubSessions struct{ coord.SessionStore }
type stubInvalidator struct{ coord.Invalidator }

var (
	theStubLock    = &stubLock{}
	theStubSession = &coord.Session{UserID: "user-1"}
)

func (stub) Locker() coord.Locker           { return stubLocker{} }
func (stub) Sessions() coord.SessionStore   { return stubSessions{} }
func (stub) Invalidator() coord.Invalidator { return stubInvalidator{} }
func (stub) Events() coord.EventBus         { return nil }

func (stubLocker) Acquire(context.Context, string, ...coord.LockOption) (coord.Lock, error) {
	return theStubLock, nil
}
func (*stubLock) Release(context.Context) error { return nil }
func (stubSessions) Get(context.Context, string) (*coord.Session, error) {
	return theStubSession, nil
}
func (stubInvalidator) Invalidate(context.Context, string, any) error { return nil }

// BenchmarkOverhead measures each decorator over a backend that does
// nothing: the figures are the decorators' own cost per operation.
func BenchmarkOverhead(b *testing.B) {
	ctx := context.Background()
	for _, d := range decorations {
		be := d.wrap(b, stub{})
		b.Run("AcquireRelease/"+d.name, func(b *testing.B) {
			l := be.Locker()
			b.ReportAllocs()
			for b.Loop() {
				lk, _ := l.Acquire(ctx, "bench")
				_ = lk.Release(ctx)
			}
		})
		b.Run("SessionGet/"+d.name, func(b *testing.B) {
			s := be.Sessions()
			b.ReportAllocs()
			for b.Loop() {
				_, _ = s.Get(ctx, "token")
			}
		})
		b.Run("Invalidate/"+d.name, func(b *testing.B) {
			inv := be.Invalidator()
			b.ReportAllocs()
			for b.Loop() {
				_ = inv.Invalidate(ctx, "user:42:profile", nil)
			}
		})
	}
}

// BenchmarkClockRead measures one monotonic clock read, the floor of a
// timed operation's cost: the metrics decorator reads the clock twice per
// operation (four times for Acquire and Release).
func BenchmarkClockRead(b *testing.B) {
	base := time.Now()
	var d time.Duration
	for b.Loop() {
		d += time.Since(base)
	}
	_ = d
}
