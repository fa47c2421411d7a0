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
	if lk.dequeue(q, w, handoff) && handoff == 0 {
		// The instance's last waiter gave up: leave the queue in Redis.
		lk.leave(resource)
	}
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
	t := &queueWait{lk: lk, ctx: ctx, q: q, w: w, o: o, tries: tries}
	defer t.stopTimer()
	if err := t.untilHead(); err != nil {
		return nil, grant{}, err
	}
	g, ok := t.asHead()
	if !ok {
		return nil, grant{}, t.stopped()
	}
	return t.contend(g)
}

// queueWait is the state of one waiter's waiting loop: the tries it has
// made and its one timer.
type queueWait struct {
	lk    *Locker
	ctx   context.Context
	q     *waitq
	w     *waiter
	o     coord.LockOptions
	tries int
	timer *time.Timer

	beating bool      // the last wait was cut to a beat (see Locker.beat)
	fired   bool      // the last wait ended with its timer
	counted time.Time // when the last try that counted was made
}

func (t *queueWait) exhausted() bool { return t.o.Retries >= 0 && t.tries > t.o.Retries }

// sleep returns the timer's channel, firing after d (at least minWait).
func (t *queueWait) sleep(d time.Duration) <-chan time.Time {
	d = max(d, minWait)
	if t.timer == nil {
		t.timer = time.NewTimer(d)
	} else {
		t.timer.Reset(d)
	}
	return t.timer.C
}

func (t *queueWait) stopTimer() {
	if t.timer != nil {
		t.timer.Stop()
	}
}

// stopped is the error of a wait ended by ctx or by Close.
func (t *queueWait) stopped() error {
	if err := t.ctx.Err(); err != nil {
		return errors.Join(notAcquired(t.q.resource), err)
	}
	return errors.Join(notAcquired(t.q.resource), t.lk.b.checkOpen())
}

// untilHead waits for w to be the head of the queue; each RetryDelay
// without it counts as a try.
func (t *queueWait) untilHead() error {
	for {
		select {
		case <-t.w.turn:
			return nil
		case <-t.sleep(t.o.RetryDelay):
			t.tries++
			if t.exhausted() {
				return notAcquired(t.q.resource)
			}
		case <-t.ctx.Done():
			return t.stopped()
		case <-t.lk.b.closing:
			return t.stopped()
		}
	}
}

// await waits up to d for a handoff (returned), a wake-up or the time;
// false when ctx or Close ended the wait.
func (t *queueWait) await(d time.Duration) (grant, bool) {
	t.fired = false
	select {
	case g := <-t.w.grant:
		return g, true
	case <-t.w.wake:
	case <-t.sleep(d):
		t.fired = true
	case <-t.ctx.Done():
		return grant{}, false
	case <-t.lk.b.closing:
		return grant{}, false
	}
	return grant{}, true
}

// asHead readies the new head: it makes sure the wake-up subscription is
// in place before the first try, so a release after the try is not
// missed, and, when the previous head took the lease, waits for its
// release first. It returns a handoff that came meanwhile; false when
// ctx or Close ended the wait.
func (t *queueWait) asHead() (grant, bool) {
	b, w := t.lk.b, t.w
	<-t.q.subscribed
	if t.q.ready != nil {
		d := t.o.RetryDelay
		if t.lk.queueOn() {
			d = t.lk.beat(t.o) // the instance's queue entry needs its next try
		}
		b.waitReady(t.ctx, t.q.ready, max(d, time.Millisecond))
	}
	if w.inherit > 0 {
		// The previous head holds the lease: a try now would fail.
		d := min(t.o.RetryDelay, w.inherit+time.Millisecond)
		w.inherit = 0
		return t.await(d)
	}
	select {
	case g := <-w.grant:
		return g, true
	default:
		return grant{}, true
	}
}

// contend tries for the lease until it takes it, is handed it (g.ok), or
// runs out of tries, time or ctx; between tries it awaits a wake-up, up
// to RetryDelay or the holder's PTTL.
func (t *queueWait) contend(g grant) (*lock, grant, error) {
	resource := t.q.resource
	for {
		if g.ok {
			return nil, g, nil
		}
		select {
		case <-t.w.wake: // drop a stale wake-up: the try below sees the state
		default:
		}
		// After a release that yielded to other instances' waiters, try
		// at the back of the queue (without it: as a newcomer), which
		// leaves the reserved lease to them.
		l, pttl, err := t.lk.try(t.ctx, resource, t.o, !g.yielded || t.lk.queueOn())
		if l != nil || err != nil {
			return l, grant{}, err
		}
		// A try made only to renew the queue entry (a beat) counts once a
		// retry delay has passed since the last try that counted.
		if !t.beating || !t.fired || time.Since(t.counted) >= t.o.RetryDelay {
			t.tries++
			t.counted = time.Now()
			if t.exhausted() {
				return nil, grant{}, notAcquired(resource)
			}
		}
		d := t.o.RetryDelay
		if pttl >= 0 && pttl+time.Millisecond < d {
			d = pttl + time.Millisecond
		}
		t.beating = false
		if t.lk.queueOn() {
			if beat := t.lk.beat(t.o); beat < d {
				d, t.beating = beat, true
			}
		}
		var ok bool
		if g, ok = t.await(d); !ok {
			return nil, grant{}, t.stopped()
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
// subscription with the last waiter. It reports whether w was the last.
func (lk *Locker) dequeue(q *waitq, w *waiter, handoff time.Duration) bool {
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
	return empty
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
	if payload == lk.b.opts.InstanceID || lk.addressedWake(channel, payload) {
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
