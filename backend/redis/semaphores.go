package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

// Semaphores is the Backend's [coord.Semaphores]. The permits of a
// resource are one ZSET of permit values scored by their expiry in server
// milliseconds, the one source of truth: a try prunes the expired permits
// (server TIME) and takes one when fewer than the caller's limit remain,
// with a fence from the resource's counter (take() in lua/lock_lib.lua),
// in one script. A crashed holder's permit so frees itself at its TTL.
// A freed permit wakes one permit waiter of every instance through the
// resource's wake channel; on this instance, waiters queue FIFO and each
// permit taken passes the wake-up to the next, so free permits are not
// left unused while waiters sleep.
//
// Permits are full leases of the Backend's lease engine (see [Locker]);
// with [Options].LockReplicas, each is granted only once that many
// replicas acknowledged it, and a release hands no permit to a local
// waiter (the waiter's own try WAITs).
// A Semaphores is safe for concurrent use by multiple goroutines.
type Semaphores struct {
	lk     *Locker
	permit *leaseKind
	free   any // the wake payload of a freed permit, boxed once
}

var _ coord.Semaphores = (*Semaphores)(nil)

func newSemaphores(lk *Locker) *Semaphores {
	b := lk.b
	s := &Semaphores{lk: lk, free: lk.leases.payload(wakePermitFree)}
	s.permit = &leaseKind{
		name: "permit", release: b.sc.zRelease, extend: b.sc.zExtend, ttl: b.sc.zTTL,
		woken: func(resource string) {
			if !lk.leases.empty() {
				_, ch := b.keys.semKeys(resource)
				lk.leases.wake(ch, wakePermitFree)
			}
		},
	}
	s.permit.handoff = s.handoff
	return s
}

// handoff releases the permit l by handing it to the first permit waiter
// of this instance (lua/sem_handoff.lua), unless there is none, the last
// maxLocalHandoffs releases of the resource here were handoffs, or
// [Options].LockReplicas is set: a handoff grants a permit inside
// Release, where no WAIT covers it, so the waiter takes the freed permit
// with a try of its own, which WAITs (exclusive leases are not handed
// over then either).
func (s *Semaphores) handoff(ctx context.Context, l *lock) (int64, bool, error) {
	lk := s.lk
	b, lw := lk.b, lk.leases
	if b.opts.LockReplicas > 0 {
		return 0, false, nil
	}
	ch, _ := l.relArgs[0].(string) // the wake channel (see Acquire)
	w := lw.handoffTarget(ch)
	if w == nil {
		return 0, false, nil
	}
	keys, _ := b.keys.semKeys(l.resource)
	token := b.newToken()
	start := time.Now()
	n, err := b.batch.run(ctx, b.sc.semHandoff, keys, l.tokenArg, token, w.ttl.Milliseconds()).Int64()
	var g leaseGrant
	switch {
	case err != nil:
		// The outcome is unknown: the waiter's token may hold a permit.
		lk.addLeaseOrphan(s.permit, l.keys, l.relArgs, token, w.ttl)
	case n > 0:
		g = leaseGrant{ok: true, token: token, fence: n, start: start}
	}
	lw.granted(w, g)
	if err != nil {
		return 0, true, err
	}
	if n > 0 {
		return 1, true, nil
	}
	poke(w.wake) // nothing handed over: the waiter tries for itself
	return 0, true, nil
}

// As forwards to [Backend.As].
func (s *Semaphores) As(target any) bool { return s.lk.b.As(target) }

// Acquire takes a permit on resource when fewer than limit are live. May
// return [coord.ErrNotAcquired] (joined with ctx.Err() when ctx ended the
// wait), [coord.ErrInvalid] (a limit below 1 among others),
// [coord.ErrClosed] or [coord.ErrUnavailable].
func (s *Semaphores) Acquire(ctx context.Context, resource string, limit int, opts ...coord.LockOption) (coord.Lock, error) {
	o, err := s.lk.leaseOptions("resource", resource, opts)
	if err != nil {
		return nil, err
	}
	if limit < 1 {
		return nil, fmt.Errorf("%w: coord/redis: semaphore limit %d is below 1", coord.ErrInvalid, limit)
	}
	b := s.lk.b
	keys, ch := b.keys.semKeys(resource)
	return s.lk.acquireLease(ctx, &leaseTry{
		kind: s.permit, resource: resource, script: b.sc.semAcquire, keys: keys,
		leaseKeys: keys[0:1], relArgs: []any{ch, s.free, "0"},
		extra: []any{limit}, channel: ch, role: rolePermit,
	}, o)
}

// Holders returns the number of live permits on resource.
func (s *Semaphores) Holders(ctx context.Context, resource string) (int, error) {
	b := s.lk.b
	if err := b.checkOpen(); err != nil {
		return 0, err
	}
	if err := driver.ValidateName("resource", resource); err != nil {
		return 0, err
	}
	keys, _ := b.keys.semKeys(resource)
	n, err := b.sc.semCount.Run(ctx, b.client, keys[0:1]).Int64()
	if err := b.fail(ctx, "semaphore holders", err); err != nil {
		return 0, err
	}
	return int(n), nil
}

// ForceRelease ends every permit on resource and wakes the waiters; it
// returns how many permits it ended.
func (s *Semaphores) ForceRelease(ctx context.Context, resource string) (int, error) {
	b := s.lk.b
	if err := b.checkOpen(); err != nil {
		return 0, err
	}
	if err := driver.ValidateName("resource", resource); err != nil {
		return 0, err
	}
	keys, ch := b.keys.semKeys(resource)
	n, err := b.sc.semForce.Run(ctx, b.client, keys[0:1], ch, s.lk.leases.payload(wakeAll)).Int64()
	if err := b.fail(ctx, "force release", err); err != nil {
		return 0, err
	}
	if n > 0 {
		s.lk.leases.wake(ch, wakeAll)
	}
	return int(n), nil
}
