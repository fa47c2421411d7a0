package redis

import (
	"context"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/secret"
)

// grant is the outcome of a local handoff (see [Options].LocalHandoffs).
type grant struct {
	ok      bool      // token holds the lease now, with fence
	yielded bool      // the release yielded to other instances' waiters
	token   string    // the new lease's
	fence   int64     // the new lease's
	start   time.Time // taken before the handoff was sent: the lease's local deadline counts from it
}

// giveBack releases a lease handed over to a waiter that no longer
// wants it, passing it on to the next local waiter if there is one (a
// release that fails is retried in the background).
func (lk *Locker) giveBack(resource string, g grant, ttl time.Duration) {
	l := lk.newLock(resource, g.token, g.fence, coord.LockOptions{TTL: ttl})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = l.Release(ctx)
}

// handoffTarget returns the waiter a Release of resource should hand its
// lease to (marked pending), and whether this release yields to other
// instances instead (see [Options].LocalHandoffs); nil when the release
// is an ordinary one.
func (lk *Locker) handoffTarget(resource string) (*waiter, bool) {
	b := lk.b
	if b.opts.LocalHandoffs < 0 || b.opts.LockReplicas > 0 {
		return nil, false
	}
	lk.mu.Lock()
	defer lk.mu.Unlock()
	q := lk.queues[resource]
	if lk.stopped || q == nil || len(q.waiters) == 0 {
		return nil, false
	}
	w := q.waiters[0]
	if w.pending || w.leaving || len(w.grant) > 0 {
		// A handoff to w is under way, or its outcome not yet taken.
		return nil, false
	}
	yield := q.streak >= b.opts.LocalHandoffs
	if yield && !lk.queueOn() {
		// Without the queue in Redis, yielding is a plain release.
		q.streak = 0
		return nil, false
	}
	w.pending = true
	q.streak++
	if yield {
		q.streak = 0
	}
	return w, yield
}

// handOff releases the lease by handing it to w, a waiter of this
// instance (lock_handoff.lua), and tells w the outcome. l.opMu is held.
func (l *lock) handOff(ctx context.Context, w *waiter, yield bool) error {
	lk := l.lk
	b := lk.b
	token := secret.LockToken() + b.holderSuffix()
	y := "0"
	if yield {
		y = "1"
	}
	key, fenceKey := b.keys.lockKeys(l.resource)
	start := time.Now()
	n, err := b.batch.run(ctx, b.sc.lockHandoff, []string{key, fenceKey, b.keys.lockQueueKey(key)}, l.tokenArg, token,
		w.ttl.Milliseconds(), y, b.keys.wakeChannel(key), b.idArg).Int64()
	if err != nil {
		// The outcome is unknown: the waiter's token may hold the lease.
		lk.addOrphan(key, token, w.ttl)
	}
	g := grant{yielded: n == -2}
	if err == nil && n > 0 {
		g = grant{ok: true, token: token, fence: n, start: start}
	}
	lk.mu.Lock()
	w.pending = false
	w.grant <- g // never blocks: one handoff at a time, and w takes each
	lk.mu.Unlock()
	if err := b.fail(ctx, "release", err); err != nil {
		l.giveUp()
		return err
	}
	released := n > 0 || n == -2
	l.mu.Lock()
	l.released = l.released || released
	l.finishLocked()
	l.mu.Unlock()
	if released {
		return nil
	}
	return l.heldErr("release", n)
}
