package redis

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/cgn-bot/coord"
)

// waitq is this instance's FIFO of the Acquires waiting for one
// resource, behind one wake subscription; only its head contends.
type waitq struct {
	resource, channel string
	waiters           []*waiter
	subscribed        chan struct{} // closed once the subscription was requested
	ready             <-chan struct{}
	subErr            error
	streak            int // local handoffs since the last yield
}

// waiter is one Acquire in a waitq.
type waiter struct {
	turn chan struct{} // closed when the waiter is the head
	wake chan struct{} // buffered: a release happened
	// inherit is set, before turn is closed, to the TTL of the lease the
	// previous head just took: the lease is held on this instance, so the
	// new head waits for its release (or TTL) before it tries.
	inherit time.Duration
	ttl     time.Duration // the TTL asked for, for a local handoff
	grant   chan grant    // buffered: the outcome of a local handoff

	// Guarded by Locker.mu.
	pending bool // a local handoff to this waiter is under way
	leaving bool // the wait ended: no local handoff to it any more
}

// wait queues the caller behind this instance's other waiters for
// resource and contends when at the head.
func (lk *Locker) wait(ctx context.Context, resource string, o coord.LockOptions, tries int) (coord.Lock, error) {
	b := lk.b
	w := &waiter{turn: make(chan struct{}), wake: make(chan struct{}, 1), ttl: o.TTL, grant: make(chan grant, 1)}
	q := lk.enqueue(ctx, resource, w)
	l, g, err := lk.waitTurn(ctx, q, w, o, tries)

	// No local handoff to w from now on; one may be under way.
	lk.mu.Lock()
	w.leaving = true
	pending := w.pending
	lk.mu.Unlock()
	var late grant
	if pending {
		late = <-w.grant
	} else {
		select {
		case late = <-w.grant:
		default:
		}
	}
	// Tell the next head whether a lease is held here (waiter.inherit).
	var handoff time.Duration
	if l != nil || g.ok || late.ok {
		handoff = o.TTL
	}
	lk.dequeue(q, w, handoff)
	if late.ok {
		// Handed over after the wait ended: pass it on.
		lk.giveBack(resource, late, o.TTL)
	}
	if g.ok {
		if err := ctx.Err(); err != nil {
			lk.giveBack(resource, g, o.TTL)
			return nil, errors.Join(notAcquired(resource), err)
		}
		l = lk.newLock(resource, g.token, g.fence, o)
		if !lk.register(l, g.start) {
			lk.releaseToken(l.key, l.token, o.TTL)
			return nil, errors.Join(notAcquired(resource), b.checkOpen())
		}
	}
	if l != nil {
		return l, nil
	}
	return nil, err
}

// waitTurn is the waiting loop of wait. It returns the lease it took, or
// a lease handed over to w (grant.ok; not yet registered), or an error.
func (lk *Locker) waitTurn(ctx context.Context, q *waitq, w *waiter, o coord.LockOptions, tries int) (*lock, grant, error) {
	b := lk.b
	resource := q.resource
	exhausted := func() bool { return o.Retries >= 0 && tries > o.Retries }
	var timer *time.Timer
	sleep := func(d time.Duration) <-chan time.Time {
		d = max(d, minWait)
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		return timer.C
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	stop := func() error {
		if err := ctx.Err(); err != nil {
			return errors.Join(notAcquired(resource), err)
		}
		return errors.Join(notAcquired(resource), b.checkOpen())
	}

	// Not the head: wait for the turn; each RetryDelay without it counts
	// as a try.
	for waiting := true; waiting; {
		select {
		case <-w.turn:
			waiting = false
		case <-sleep(o.RetryDelay):
			tries++
			if exhausted() {
				return nil, grant{}, notAcquired(resource)
			}
		case <-ctx.Done():
			return nil, grant{}, stop()
		case <-b.closing:
			return nil, grant{}, stop()
		}
	}

	// await waits up to d for a handoff (returned), a wake-up or the
	// time; false when ctx or Close ended the wait.
	await := func(d time.Duration) (grant, bool) {
		select {
		case g := <-w.grant:
			return g, true
		case <-w.wake:
		case <-sleep(d):
		case <-ctx.Done():
			return grant{}, false
		case <-b.closing:
			return grant{}, false
		}
		return grant{}, true
	}

	// The head: make sure the wake-up subscription is in place before
	// trying, so a release after the try is not missed.
	var g grant
	<-q.subscribed
	if q.ready != nil {
		b.waitReady(ctx, q.ready, max(o.RetryDelay, time.Millisecond))
	}
	if w.inherit > 0 {
		// The previous head holds the lease: a try now would fail.
		d := min(o.RetryDelay, w.inherit+time.Millisecond)
		w.inherit = 0
		var ok bool
		if g, ok = await(d); !ok {
			return nil, grant{}, stop()
		}
	} else {
		select {
		case g = <-w.grant:
		default:
		}
	}
	for {
		if g.ok {
			return nil, g, nil
		}
		select {
		case <-w.wake: // drop a stale wake-up: the try below sees the state
		default:
		}
		// After a release that yielded to other instances' waiters, try as
		// a newcomer, which leaves the reserved lease to them.
		l, pttl, err := lk.try(ctx, resource, o, !g.yielded)
		if l != nil || err != nil {
			return l, grant{}, err
		}
		tries++
		if exhausted() {
			return nil, grant{}, notAcquired(resource)
		}
		d := o.RetryDelay
		if pttl >= 0 && pttl+time.Millisecond < d {
			d = pttl + time.Millisecond
		}
		var ok bool
		if g, ok = await(d); !ok {
			return nil, grant{}, stop()
		}
	}
}

// enqueue adds w to the queue of resource, subscribing to its wake
// channel when the queue is new.
func (lk *Locker) enqueue(ctx context.Context, resource string, w *waiter) *waitq {
	b := lk.b
	lk.mu.Lock()
	q := lk.queues[resource]
	fresh := q == nil
	if fresh {
		q = &waitq{
			resource:   resource,
			channel:    b.keys.wakeChannel(b.keys.lockKey(resource)),
			subscribed: make(chan struct{}),
		}
		lk.queues[resource] = q
		lk.byChannel[q.channel] = q
	}
	q.waiters = append(q.waiters, w)
	if len(q.waiters) == 1 {
		close(w.turn)
	}
	lk.mu.Unlock()
	if fresh {
		q.ready, q.subErr = b.sub.acquire(ctx, q.channel, kindWake)
		close(q.subscribed)
	}
	return q
}

// dequeue removes w from q, hands the turn to the next waiter (telling it
// when w took the lease, see waiter.inherit), and drops the wake
// subscription with the last waiter.
func (lk *Locker) dequeue(q *waitq, w *waiter, handoff time.Duration) {
	lk.mu.Lock()
	i := slices.Index(q.waiters, w)
	if i >= 0 {
		q.waiters = slices.Delete(q.waiters, i, i+1)
		if i == 0 && len(q.waiters) > 0 {
			q.waiters[0].inherit = handoff
			close(q.waiters[0].turn)
		}
	}
	empty := len(q.waiters) == 0
	if empty && lk.queues[q.resource] == q {
		delete(lk.queues, q.resource)
		delete(lk.byChannel, q.channel)
	}
	lk.mu.Unlock()
	if empty {
		<-q.subscribed
		if q.subErr == nil {
			lk.b.sub.release(q.channel)
		}
	}
}

// localWake wakes the head waiter of resource on this instance.
func (lk *Locker) localWake(resource string) {
	lk.mu.Lock()
	if q := lk.queues[resource]; q != nil && len(q.waiters) > 0 {
		wakeOne(q.waiters[0])
	}
	lk.mu.Unlock()
}

func wakeOne(w *waiter) {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// remoteWake handles a message on a wake channel. A release by this
// instance has already woken its waiter.
func (lk *Locker) remoteWake(channel, payload string) {
	if payload == lk.b.opts.InstanceID {
		return
	}
	lk.mu.Lock()
	if q := lk.byChannel[channel]; q != nil && len(q.waiters) > 0 {
		wakeOne(q.waiters[0])
	}
	lk.mu.Unlock()
}

// wakeAll wakes every head waiter (after a gap in the subscription, when
// a release may have been missed).
func (lk *Locker) wakeAll() {
	lk.mu.Lock()
	for _, q := range lk.queues {
		if len(q.waiters) > 0 {
			wakeOne(q.waiters[0])
		}
	}
	lk.mu.Unlock()
}
