package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
	"github.com/prometheus/client_golang/prometheus"
)

// primitive names a kind of lease besides the Locker's: the value of the
// primitive label of the lease_* metrics.
type primitive uint8

const (
	primRead primitive = iota
	primWrite
	primPermit
	primLeader
	numPrimitives
)

var primitiveNames = [numPrimitives]string{"rwlock_read", "rwlock_write", "semaphore", "election"}

// leaseMetrics are the metrics of the read and write leases, permits and
// leaderships: their labels are the primitive and a status, so their
// series are few and fixed.
type leaseMetrics struct {
	acquired [numPrimitives][2]prometheus.Counter  // status acquired, failed
	wait     [numPrimitives][2]prometheus.Observer // status acquired, failed
	hold     [numPrimitives]prometheus.Observer
	lost     [numPrimitives]prometheus.Counter
}

// newLeaseMetrics registers the lease_* metrics with r.
func newLeaseMetrics(r *registrar, ns string, lockBuckets []float64) *leaseMetrics {
	acq := register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "lease_acquisitions_total",
		Help: "RLock, Lock, permit Acquire and Campaign calls, by primitive and status (acquired or failed).",
	}, []string{"primitive", "status"}))
	wait := register(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Name: "lease_wait_seconds",
		Help:    "Time RLock, Lock, permit Acquire and Campaign took, by primitive and status.",
		Buckets: lockBuckets,
	}, []string{"primitive", "status"}))
	hold := register(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Name: "lease_hold_seconds",
		Help:    "How long read and write leases, permits and leaderships were held, by primitive.",
		Buckets: lockBuckets,
	}, []string{"primitive"}))
	lost := register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "lease_lost_total",
		Help: "Read and write leases, permits and leaderships lost before their release, by primitive.",
	}, []string{"primitive"}))
	lm := &leaseMetrics{}
	if r.err != nil {
		return lm
	}
	for p := range numPrimitives {
		name := primitiveNames[p]
		for s, status := range []string{"acquired", "failed"} {
			lm.acquired[p][s] = acq.WithLabelValues(name, status)
			lm.wait[p][s] = wait.WithLabelValues(name, status)
		}
		lm.hold[p] = hold.WithLabelValues(name)
		lm.lost[p] = lost.WithLabelValues(name)
	}
	return lm
}

// acquired records one acquisition of p that started at start (a reading
// of m.clock) and wraps its lease.
func (m *Middleware) acquired(op obs.Op, p primitive, start time.Duration, l coord.Lock, err error) (*lease, error) {
	now := m.clock.Now()
	d := now - start
	failed := err != nil || l == nil
	status := 0
	if failed {
		status = 1
	}
	m.leases.acquired[p][status].Inc()
	m.leases.wait[p][status].Observe(d.Seconds())
	m.observe(op, d, err)
	if failed {
		return nil, err
	}
	return &lease{m: m, next: l, prim: p, start: now}, nil
}

// lease decorates one read or write lease, permit or leadership: its
// Release, Extend and TTL count as lock_release, lock_extend and lock_ttl
// operations, and its hold time and loss under its primitive.
type lease struct {
	m     *Middleware
	next  coord.Lock
	prim  primitive
	start time.Duration
	ended atomic.Bool
}

var _ coord.Lock = (*lease)(nil)

// Unwrap returns the decorated Lock.
func (l *lease) Unwrap() coord.Lock { return l.next }

// As forwards to the decorated Lock when it implements coord.Aser.
func (l *lease) As(target any) bool {
	a, ok := l.next.(coord.Aser)
	return ok && a.As(target)
}

func (l *lease) Resource() string      { return l.next.Resource() }
func (l *lease) Token() string         { return l.next.Token() }
func (l *lease) Fence() int64          { return l.next.Fence() }
func (l *lease) Done() <-chan struct{} { return l.next.Done() }

func (l *lease) TTL(ctx context.Context) (time.Duration, error) {
	start := l.m.clock.Now()
	ttl, err := l.next.TTL(ctx)
	l.record(obs.LockTTL, start, err, obs.IsLeaseLost(err))
	return ttl, err
}

func (l *lease) Extend(ctx context.Context, ttl time.Duration) error {
	start := l.m.clock.Now()
	err := l.next.Extend(ctx, ttl)
	l.record(obs.LockExtend, start, err, obs.IsLeaseLost(err))
	return err
}

// Release ends the lease whatever it returns (see coord.Lock).
func (l *lease) Release(ctx context.Context) error {
	start := l.m.clock.Now()
	err := l.next.Release(ctx)
	l.record(obs.LockRelease, start, err, true)
	return err
}

// record records op, which started at start and ended now with err; ends
// says whether the lease ended with it. The first call that sees the end
// observes the hold time, and counts the lease lost when err says so.
func (l *lease) record(op obs.Op, start time.Duration, err error, ends bool) {
	m := l.m
	now := m.clock.Now()
	m.observe(op, now-start, err)
	if !ends || l.ended.Swap(true) {
		return
	}
	m.leases.hold[l.prim].Observe((now - l.start).Seconds())
	if obs.IsLeaseLost(err) {
		m.leases.lost[l.prim].Inc()
	}
}

// RWLocker decorates next with metrics: lease_acquisitions_total,
// lease_wait_seconds, lease_hold_seconds and lease_lost_total under the
// primitives rwlock_read and rwlock_write, and the latency and errors of
// every operation. A nil m or next gives next unchanged.
func (m *Middleware) RWLocker(next coord.RWLocker) coord.RWLocker {
	if m == nil || next == nil {
		return next
	}
	return &rwLocker{m: m, next: next}
}

type rwLocker struct {
	m    *Middleware
	next coord.RWLocker
}

var _ coord.RWLocker = (*rwLocker)(nil)

// Unwrap returns the decorated RWLocker.
func (r *rwLocker) Unwrap() coord.RWLocker { return r.next }

func (r *rwLocker) RLock(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	start := r.m.clock.Now()
	l, err := r.next.RLock(ctx, resource, opts...)
	d, err := r.m.acquired(obs.RWRLock, primRead, start, l, err)
	if d == nil {
		return l, err
	}
	return d, nil
}

func (r *rwLocker) Lock(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	start := r.m.clock.Now()
	l, err := r.next.Lock(ctx, resource, opts...)
	d, err := r.m.acquired(obs.RWLock, primWrite, start, l, err)
	if d == nil {
		return l, err
	}
	return d, nil
}

func (r *rwLocker) State(ctx context.Context, resource string) (st coord.RWState, err error) {
	defer r.m.done(obs.RWState, r.m.clock.Now(), &err)
	return r.next.State(ctx, resource)
}

func (r *rwLocker) ForceRelease(ctx context.Context, resource string) (ok bool, err error) {
	defer r.m.done(obs.RWForceRelease, r.m.clock.Now(), &err)
	return r.next.ForceRelease(ctx, resource)
}
