package logging

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// Backend decorates next and its parts: Locker, Sessions, Invalidator and
// Events return next's parts decorated by m (made once, here); Health and
// Close are logged and forwarded. A Health whose status is not healthy is
// logged at the Failure level when the status changed since the previous
// Health, at the Success level while it stays the same. A nil m or next
// gives next unchanged.
func (m *Middleware) Backend(next coord.Backend) coord.Backend {
	if m == nil || next == nil {
		return next
	}
	return &backend{
		m:           m,
		next:        next,
		locker:      m.Locker(next.Locker()),
		sessions:    m.Sessions(next.Sessions()),
		invalidator: m.Invalidator(next.Invalidator()),
		events:      m.Events(next.Events()),
	}
}

type backend struct {
	m           *Middleware
	last        atomic.Value // string: the status of the last Health
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

// Health logs the backend's health. A status other than healthy is
// logged at the Failure level when it differs from the previous call's
// (the start of an outage, or a change of its kind), and at the Success
// level while it stays the same, so that a load balancer or a Kubernetes
// probe polling every few seconds does not repeat a warning for as long
// as Redis is down.
func (b *backend) Health(ctx context.Context) coord.Health {
	m := b.m
	if !m.on(ctx) {
		h := b.next.Health(ctx)
		b.last.Store(string(h.Status))
		return h
	}
	start := m.clock.Now()
	h := b.next.Health(ctx)
	prev, _ := b.last.Swap(string(h.Status)).(string)
	var err error
	if h.Status != coord.Healthy {
		err = healthError(h.Error)
	}
	lvl := m.success.Level()
	if err != nil && prev != string(h.Status) {
		lvl = m.failure.Level()
	}
	if !m.log.Enabled(ctx, lvl) {
		return h
	}
	attrs := []slog.Attr{
		slog.String("status", string(h.Status)),
		slog.String("backend", h.Backend),
		slog.String("connection", string(h.Connection)),
	}
	if prev != "" && prev != string(h.Status) {
		attrs = append(attrs, slog.String("previous", prev))
	}
	m.write(ctx, lvl, obs.BackendHealth, m.clock.Now()-start, err, attrs...)
	return h
}

// healthError is the error a Health that is not healthy is logged with:
// its kind is unavailable and its text is the Health's Error as the
// backend wrote it (which usually says "unavailable" already), or the
// text of [coord.ErrUnavailable] when it is empty.
type healthError string

func (e healthError) Error() string {
	if e == "" {
		return coord.ErrUnavailable.Error()
	}
	return string(e)
}

// Is makes a healthError match [coord.ErrUnavailable].
func (e healthError) Is(target error) bool { return target == coord.ErrUnavailable }

func (b *backend) Close(ctx context.Context) error {
	m := b.m
	if !m.on(ctx) {
		return b.next.Close(ctx)
	}
	start := m.clock.Now()
	err := b.next.Close(ctx)
	m.done(ctx, obs.BackendClose, start, err, func() []slog.Attr {
		return []slog.Attr{slog.String("instance", b.next.InstanceID())}
	})
	return err
}
