package metrics

import (
	"context"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// Backend decorates next and its parts: Locker, Sessions, Invalidator and
// Events return next's parts decorated by m (made once, here), Health and
// Close are timed and forwarded. Until it is closed through the decorator,
// next's connection state is exported as redis_connection_state, read at
// each scrape from the outermost [github.com/cgn-bot/coord/driver.StateReporter] among next and
// what it wraps, or else from Health; once closed, neither it nor its parts are
// watched any more (their Stats counters keep their last values). A nil m
// or next gives next unchanged.
func (m *Middleware) Backend(next coord.Backend) coord.Backend {
	if m == nil || next == nil {
		return next
	}
	l, inv, bus := next.Locker(), next.Invalidator(), next.Events()
	b := &backend{
		m:           m,
		next:        next,
		locker:      m.Locker(l),
		sessions:    m.Sessions(next.Sessions()),
		invalidator: m.Invalidator(inv),
		events:      m.Events(bus),
		retire:      func() { m.state.retireBackend(next, l, inv, bus) },
	}
	m.state.addBackend(next)
	return b
}

type backend struct {
	m           *Middleware
	next        coord.Backend
	locker      coord.Locker
	sessions    coord.SessionStore
	invalidator coord.Invalidator
	events      coord.EventBus
	retire      func() // stops watching next and its parts
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
	m := b.m
	start := m.clock.Now()
	h := b.next.Health(ctx)
	var err error
	if h.Status == coord.Unhealthy {
		err = coord.ErrUnavailable
	}
	m.observe(obs.BackendHealth, m.clock.Now()-start, err)
	return h
}

func (b *backend) Close(ctx context.Context) (err error) {
	defer b.m.done(obs.BackendClose, b.m.clock.Now(), &err)
	defer b.retire()
	return b.next.Close(ctx)
}
