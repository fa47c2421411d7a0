package tracing

import (
	"context"

	"github.com/cgn-bot/coord"
	"go.opentelemetry.io/otel/trace"
)

// Backend decorates next and its parts: Locker, Sessions, Invalidator and
// Events return next's parts decorated by t (made once, here); Health and
// Close get a span each. A nil t or next gives next unchanged.
func (t *Tracer) Backend(next coord.Backend) coord.Backend {
	if t == nil || next == nil {
		return next
	}
	return &backend{
		t:           t,
		next:        next,
		locker:      t.Locker(next.Locker()),
		sessions:    t.Sessions(next.Sessions()),
		invalidator: t.Invalidator(next.Invalidator()),
		events:      t.Events(next.Events()),
	}
}

type backend struct {
	t           *Tracer
	next        coord.Backend
	locker      coord.Locker
	sessions    coord.SessionStore
	invalidator coord.Invalidator
	events      coord.EventBus
}

var _ coord.Backend = (*backend)(nil)

// Unwrap returns the decorated Backend.
func (b *backend) Unwrap() coord.Backend { return b.next }

// As forwards to the decorated Backend (see coord.As).
func (b *backend) As(target any) bool { return coord.As(b.next, target) }

func (b *backend) Locker() coord.Locker           { return b.locker }
func (b *backend) Sessions() coord.SessionStore   { return b.sessions }
func (b *backend) Invalidator() coord.Invalidator { return b.invalidator }
func (b *backend) Events() coord.EventBus         { return b.events }
func (b *backend) InstanceID() string             { return b.next.InstanceID() }

func (b *backend) Health(ctx context.Context) coord.Health {
	ctx, span := b.t.start(ctx, "backend.health", trace.SpanKindClient)
	h := b.next.Health(ctx)
	var err error
	if h.Status == coord.Unhealthy {
		err = coord.ErrUnavailable
	}
	end(span, err, AttrHealth.String(string(h.Status)))
	return h
}

func (b *backend) Close(ctx context.Context) error {
	ctx, span := b.t.start(ctx, "backend.close", trace.SpanKindClient)
	err := b.next.Close(ctx)
	end(span, err)
	return err
}
