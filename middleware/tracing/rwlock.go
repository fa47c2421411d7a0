package tracing

import (
	"context"
	"time"

	"github.com/cgn-bot/coord"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// acquire runs one acquisition (do) under a span named op, with names
// (the resource or election attribute) and extra attributes, and
// decorates the lease it returns as [Tracer.Locker] decorates its Locks:
// spans for its Release, Extend and TTL, linked to this span, and a
// recorded loss. It returns nil when there is no lease to decorate.
func (t *Tracer) acquire(ctx context.Context, op string, names []attribute.KeyValue, do func(ctx context.Context) (coord.Lock, error), extra ...attribute.KeyValue) (*lock, error) {
	ctx, span := t.start(ctx, op, trace.SpanKindClient, append(names, extra...)...)
	start := time.Now()
	l, err := do(ctx)
	attrs := []attribute.KeyValue{AttrWaitMS.Float64(ms(time.Since(start)))}
	if err == nil && l != nil {
		attrs = append(attrs, AttrFence.Int64(l.Fence()))
	}
	end(span, err, attrs...)
	if err != nil || l == nil {
		return nil, err
	}
	d := &lock{t: t, next: l, acquire: span.SpanContext(), names: names, at: time.Now()}
	if !t.noWatch {
		go d.watch()
	}
	return d, nil
}

// RWLocker decorates next with spans: rwlock.rlock and rwlock.lock
// (resource, outcome, fence, wait time), rwlock.state,
// rwlock.force_release, and the Release, Extend and TTL of the leases it
// returns, as for [Tracer.Locker]. A nil t or next gives next unchanged.
func (t *Tracer) RWLocker(next coord.RWLocker) coord.RWLocker {
	if t == nil || next == nil {
		return next
	}
	return &rwLocker{t: t, next: next}
}

type rwLocker struct {
	t    *Tracer
	next coord.RWLocker
}

var _ coord.RWLocker = (*rwLocker)(nil)

// Unwrap returns the decorated RWLocker.
func (r *rwLocker) Unwrap() coord.RWLocker { return r.next }

func (r *rwLocker) RLock(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	var raw coord.Lock
	d, err := r.t.acquire(ctx, "rwlock.rlock", r.t.name(AttrResource, resource), func(ctx context.Context) (coord.Lock, error) {
		l, err := r.next.RLock(ctx, resource, opts...)
		raw = l
		return l, err
	})
	if d == nil {
		return raw, err
	}
	return d, nil
}

func (r *rwLocker) Lock(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	var raw coord.Lock
	d, err := r.t.acquire(ctx, "rwlock.lock", r.t.name(AttrResource, resource), func(ctx context.Context) (coord.Lock, error) {
		l, err := r.next.Lock(ctx, resource, opts...)
		raw = l
		return l, err
	})
	if d == nil {
		return raw, err
	}
	return d, nil
}

func (r *rwLocker) State(ctx context.Context, resource string) (coord.RWState, error) {
	ctx, span := r.t.start(ctx, "rwlock.state", trace.SpanKindClient, r.t.name(AttrResource, resource)...)
	st, err := r.next.State(ctx, resource)
	end(span, err, AttrCount.Int(st.Readers), AttrHeld.Bool(st.Writer))
	return st, err
}

func (r *rwLocker) ForceRelease(ctx context.Context, resource string) (bool, error) {
	ctx, span := r.t.start(ctx, "rwlock.force_release", trace.SpanKindClient, r.t.name(AttrResource, resource)...)
	released, err := r.next.ForceRelease(ctx, resource)
	end(span, err, AttrHeld.Bool(released))
	return released, err
}
