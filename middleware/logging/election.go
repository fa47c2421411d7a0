package logging

import (
	"context"
	"log/slog"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// Elector decorates next with logging: Campaign (with the identity),
// Leader, Observe and ForceRelease are logged, and the leaderships
// Campaign returns are decorated as [Middleware.Locker] decorates its
// Locks (a resignation is logged as lock_release). Observe's function is
// not wrapped. A nil m or next gives next unchanged.
func (m *Middleware) Elector(next coord.Elector) coord.Elector {
	if m == nil || next == nil {
		return next
	}
	return &elector{m: m, next: next}
}

type elector struct {
	m    *Middleware
	next coord.Elector
}

var _ coord.Elector = (*elector)(nil)

// Unwrap returns the decorated Elector.
func (e *elector) Unwrap() coord.Elector { return e.next }

func (e *elector) Campaign(ctx context.Context, election, identity string, opts ...coord.LockOption) (coord.Leadership, error) {
	var got coord.Leadership
	_, d, err := e.m.acquire(ctx, obs.ElectCampaign, "election", election, func() (coord.Lock, error) {
		l, err := e.next.Campaign(ctx, election, identity, opts...)
		got = l
		if l == nil {
			return nil, err
		}
		return l, err
	}, slog.String("identity", identity))
	if d == nil {
		return got, err
	}
	return &leadership{lock: d, identity: got.Identity()}, nil
}

func (e *elector) Leader(ctx context.Context, election string) (coord.LeaderInfo, error) {
	m := e.m
	if !m.on(ctx) {
		return e.next.Leader(ctx, election)
	}
	start := m.clock.Now()
	info, err := e.next.Leader(ctx, election)
	m.done(ctx, obs.ElectLeader, start, err, func() []slog.Attr {
		return []slog.Attr{name("election", election), slog.String("identity", info.Identity), slog.String("leader_instance", info.InstanceID), slog.Int64("term", info.Term)}
	})
	return info, err
}

func (e *elector) Observe(ctx context.Context, election string, fn func(coord.LeaderInfo), opts ...coord.SubscribeOption) (coord.Subscription, error) {
	m := e.m
	if !m.on(ctx) {
		return e.next.Observe(ctx, election, fn, opts...)
	}
	start := m.clock.Now()
	sub, err := e.next.Observe(ctx, election, fn, opts...)
	m.done(ctx, obs.ElectObserve, start, err, func() []slog.Attr {
		return []slog.Attr{name("election", election)}
	})
	return sub, err
}

func (e *elector) ForceRelease(ctx context.Context, election string) (bool, error) {
	m := e.m
	if !m.on(ctx) {
		return e.next.ForceRelease(ctx, election)
	}
	start := m.clock.Now()
	released, err := e.next.ForceRelease(ctx, election)
	m.done(ctx, obs.ElectForceRelease, start, err, func() []slog.Attr {
		return []slog.Attr{name("election", election), slog.Bool("released", released)}
	})
	return released, err
}

// leadership is a decorated lease that keeps its leader's identity.
type leadership struct {
	*lock
	identity string
}

var _ coord.Leadership = (*leadership)(nil)

// Identity returns the identity the leader proclaimed.
func (l *leadership) Identity() string { return l.identity }
