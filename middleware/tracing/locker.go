package tracing

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/cgn-bot/coord"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Locker decorates next with spans: Acquire (resource, outcome, fence,
// wait time), Locked, ForceRelease, and the Release, Extend and TTL of
// the Locks it returns. A lease found lost records [EventLeaseLost] on a
// span linked to its Acquire span. Held returns next's leases as next
// returns them. A nil t or next gives next unchanged.
func (t *Tracer) Locker(next coord.Locker) coord.Locker {
	if t == nil || next == nil {
		return next
	}
	return &locker{t: t, next: next}
}

type locker struct {
	t    *Tracer
	next coord.Locker
}

var _ coord.Locker = (*locker)(nil)

// Unwrap returns the decorated Locker.
func (l *locker) Unwrap() coord.Locker { return l.next }

// As forwards to the decorated Locker (see coord.As).
func (l *locker) As(target any) bool { return coord.As(l.next, target) }

func (l *locker) Acquire(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	t := l.t
	names := t.name(AttrResource, resource)
	ctx, span := t.start(ctx, "lock.acquire", trace.SpanKindClient, names...)
	start := time.Now()
	lk, err := l.next.Acquire(ctx, resource, opts...)
	wait := time.Since(start)
	attrs := []attribute.KeyValue{AttrWaitMS.Float64(ms(wait))}
	if err == nil && lk != nil {
		attrs = append(attrs, AttrFence.Int64(lk.Fence()))
	}
	end(span, err, attrs...)
	if err != nil || lk == nil {
		return lk, err
	}
	d := &lock{t: t, next: lk, acquire: span.SpanContext(), names: names, at: time.Now()}
	if !t.noWatch {
		go d.watch()
	}
	return d, nil
}

func (l *locker) Locked(ctx context.Context, resource string) (bool, error) {
	ctx, span := l.t.start(ctx, "lock.locked", trace.SpanKindClient, l.t.name(AttrResource, resource)...)
	held, err := l.next.Locked(ctx, resource)
	end(span, err, AttrHeld.Bool(held))
	return held, err
}

func (l *locker) ForceRelease(ctx context.Context, resource string) (bool, error) {
	ctx, span := l.t.start(ctx, "lock.force_release", trace.SpanKindClient, l.t.name(AttrResource, resource)...)
	released, err := l.next.ForceRelease(ctx, resource)
	end(span, err, AttrHeld.Bool(released))
	return released, err
}

func (l *locker) Held() []coord.Lock { return l.next.Held() }

// lock decorates one lease.
type lock struct {
	t       *Tracer
	next    coord.Lock
	acquire trace.SpanContext    // of the Acquire span, for links
	names   []attribute.KeyValue // the resource attribute, if any
	at      time.Time            // when Acquire returned

	releasing atomic.Bool // Release was called: Done closing is no loss
	lost      atomic.Bool // the loss was recorded
}

var _ coord.Lock = (*lock)(nil)

// Unwrap returns the decorated Lock.
func (l *lock) Unwrap() coord.Lock { return l.next }

// As forwards to the decorated Lock when it implements coord.Aser.
func (l *lock) As(target any) bool {
	a, ok := l.next.(coord.Aser)
	return ok && a.As(target)
}

func (l *lock) Resource() string      { return l.next.Resource() }
func (l *lock) Token() string         { return l.next.Token() }
func (l *lock) Fence() int64          { return l.next.Fence() }
func (l *lock) Done() <-chan struct{} { return l.next.Done() }

// start starts the span of an operation on the lease, linked to the
// Acquire span.
func (l *lock) start(ctx context.Context, op string) (context.Context, trace.Span) {
	return l.t.tracer.Start(ctx, "coord "+op,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithLinks(trace.Link{SpanContext: l.acquire}),
		trace.WithAttributes(append(l.names, AttrOperation.String(op), AttrFence.Int64(l.next.Fence()))...))
}

// finish ends span with err, first recording the lease's loss on it when
// err says the lease is no longer this holder's.
func (l *lock) finish(span trace.Span, err error) {
	if err != nil && isLost(err) {
		l.recordLoss(span)
	}
	end(span, err)
}

func isLost(err error) bool {
	o := Outcome(err)
	return o == "not_held" || o == "expired"
}

// recordLoss adds the lease-lost event to span, once per lease.
func (l *lock) recordLoss(span trace.Span) {
	if l.lost.Swap(true) {
		return
	}
	span.AddEvent(EventLeaseLost, trace.WithAttributes(AttrHeldMS.Float64(ms(time.Since(l.at)))))
}

// watch waits for the lease to end and, when it ends without a Release,
// records its loss on a span of its own, linked to the Acquire span.
func (l *lock) watch() {
	<-l.next.Done()
	if l.releasing.Load() || l.lost.Load() {
		return
	}
	_, span := l.start(context.Background(), "lock.lost")
	l.recordLoss(span)
	end(span, nil)
}

func (l *lock) TTL(ctx context.Context) (time.Duration, error) {
	ctx, span := l.start(ctx, "lock.ttl")
	ttl, err := l.next.TTL(ctx)
	l.finish(span, err)
	return ttl, err
}

func (l *lock) Extend(ctx context.Context, ttl time.Duration) error {
	ctx, span := l.start(ctx, "lock.extend")
	err := l.next.Extend(ctx, ttl)
	l.finish(span, err)
	return err
}

func (l *lock) Release(ctx context.Context) error {
	l.releasing.Store(true)
	ctx, span := l.start(ctx, "lock.release")
	err := l.next.Release(ctx)
	l.finish(span, err)
	return err
}
