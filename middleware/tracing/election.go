package tracing

import (
	"context"

	"github.com/cgn-bot/coord"
	"go.opentelemetry.io/otel/trace"
)

// Elector decorates next with spans: election.campaign (election as
// coord.resource, outcome, term as coord.fence, wait time),
// election.leader, election.observe (the call only; fn is not wrapped),
// election.force_release, and the Release (resignation), Extend and TTL
// of the leaderships it returns, as for [Tracer.Locker]. Identities are
// public values but are left out of spans all the same. A nil t or next
// gives next unchanged.
func (t *Tracer) Elector(next coord.Elector) coord.Elector {
	if t == nil || next == nil {
		return next
	}
	return &elector{t: t, next: next}
}

type elector struct {
	t    *Tracer
	next coord.Elector
}

var _ coord.Elector = (*elector)(nil)

// Unwrap returns the decorated Elector.
func (e *elector) Unwrap() coord.Elector { return e.next }

func (e *elector) Campaign(ctx context.Context, election, identity string, opts ...coord.LockOption) (coord.Leadership, error) {
	var raw coord.Leadership
	d, err := e.t.acquire(ctx, "election.campaign", e.t.name(AttrResource, election), func(ctx context.Context) (coord.Lock, error) {
		l, err := e.next.Campaign(ctx, election, identity, opts...)
		raw = l
		if l == nil {
			return nil, err
		}
		return l, err
	})
	if d == nil {
		return raw, err
	}
	return &leadership{lock: d, identity: raw.Identity()}, nil
}

func (e *elector) Leader(ctx context.Context, election string) (coord.LeaderInfo, error) {
	ctx, span := e.t.start(ctx, "election.leader", trace.SpanKindClient, e.t.name(AttrResource, election)...)
	info, err := e.next.Leader(ctx, election)
	end(span, err, AttrFence.Int64(info.Term))
	return info, err
}

func (e *elector) Observe(ctx context.Context, election string, fn func(coord.LeaderInfo), opts ...coord.SubscribeOption) (coord.Subscription, error) {
	// The subscription lives on ctx, not on the call's span.
	_, span := e.t.start(ctx, "election.observe", trace.SpanKindClient, e.t.name(AttrResource, election)...)
	sub, err := e.next.Observe(ctx, election, fn, opts...)
	end(span, err)
	return sub, err
}

func (e *elector) ForceRelease(ctx context.Context, election string) (bool, error) {
	ctx, span := e.t.start(ctx, "election.force_release", trace.SpanKindClient, e.t.name(AttrResource, election)...)
	released, err := e.next.ForceRelease(ctx, election)
	end(span, err, AttrHeld.Bool(released))
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
