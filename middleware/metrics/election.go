package metrics

import (
	"context"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// Elector decorates next with metrics: lease_acquisitions_total,
// lease_wait_seconds (the time Campaign took), lease_hold_seconds (terms)
// and lease_lost_total under the primitive election, and the latency and
// errors of every operation. A nil m or next gives next unchanged.
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
	start := e.m.clock.Now()
	l, err := e.next.Campaign(ctx, election, identity, opts...)
	var lk coord.Lock
	if l != nil {
		lk = l
	}
	d, err := e.m.acquired(obs.ElectCampaign, primLeader, start, lk, err)
	if d == nil {
		return l, err
	}
	return &leadership{lease: d, identity: l.Identity()}, nil
}

func (e *elector) Leader(ctx context.Context, election string) (info coord.LeaderInfo, err error) {
	defer e.m.done(obs.ElectLeader, e.m.clock.Now(), &err)
	return e.next.Leader(ctx, election)
}

func (e *elector) Observe(ctx context.Context, election string, fn func(coord.LeaderInfo), opts ...coord.SubscribeOption) (sub coord.Subscription, err error) {
	defer e.m.done(obs.ElectObserve, e.m.clock.Now(), &err)
	return e.next.Observe(ctx, election, fn, opts...)
}

func (e *elector) ForceRelease(ctx context.Context, election string) (ok bool, err error) {
	defer e.m.done(obs.ElectForceRelease, e.m.clock.Now(), &err)
	return e.next.ForceRelease(ctx, election)
}

// leadership is a decorated lease that keeps its leader's identity.
type leadership struct {
	*lease
	identity string
}

var _ coord.Leadership = (*leadership)(nil)

// Identity returns the identity the leader proclaimed.
func (l *leadership) Identity() string { return l.identity }
