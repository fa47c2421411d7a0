package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/secret"
)

// resource is the hub's state of one lease name while it has a holder or
// waiters. It is dropped from the hub once it has neither (see
// [Hub.promoteLocked]), so the hub's memory does not grow with the number
// of names ever locked; fences come from the hub's one counter, which is
// strictly increasing per resource as well.
type resource struct {
	name    string
	holder  *lock
	waiters []*waiter // FIFO, across all nodes
}

// leaseRes is what a [lock] is a lease on: a Locker resource, a
// read-write resource, a semaphore or an election. Its methods are called
// with hub.lmu held.
type leaseRes interface {
	// resName returns the name the leases are on.
	resName() string
	// dropLocked takes l, which has just ended, out of the holders.
	dropLocked(l *lock)
	// expireLocked ends the holders whose deadline passed by now and
	// hands on what that frees.
	expireLocked(h *Hub, now time.Time)
	// promoteLocked hands what is free to the waiters, first come first
	// served, and forgets the resource once it is idle.
	promoteLocked(h *Hub, now time.Time)
	// removeWaiter takes w out of the queue (a waiter that gave up or
	// whose node closed), handing on what it held back.
	removeWaiter(w *waiter)
	// nextExpiry returns the earliest deadline of a holder that keeps
	// the head of the queue out (zero when none does).
	nextExpiry() time.Time
	// notHeldLocked explains why l, which is no longer held, is not:
	// [coord.ErrNotHeld] when another holder excludes it now,
	// [coord.ErrExpired] otherwise.
	notHeldLocked(l *lock) error
}

func (r *resource) resName() string { return r.name }

func (r *resource) dropLocked(l *lock) {
	if r.holder == l {
		r.holder = nil
	}
}

func (r *resource) expireLocked(h *Hub, now time.Time) {
	if l := r.holder; l != nil && !now.Before(l.deadline) {
		h.endLocked(l, lockLost)
		r.promoteLocked(h, now)
	}
}

func (r *resource) nextExpiry() time.Time {
	if r.holder != nil {
		return r.holder.deadline
	}
	return time.Time{}
}

func (r *resource) removeWaiter(w *waiter) {
	if i := slices.Index(r.waiters, w); i >= 0 {
		r.waiters = slices.Delete(r.waiters, i, i+1)
	}
}

// waiter is one Acquire (RLock, Lock, permit Acquire or Campaign)
// waiting in a queue.
type waiter struct {
	node *Backend
	res  leaseRes
	opts coord.LockOptions
	wake chan struct{} // buffered 1

	// What the waiter asks for, beyond a Locker lease.
	write    bool   // a read-write resource's write lease
	limit    int    // a semaphore's limit
	identity string // an election's identity

	// Guarded by hub.lmu.
	granted *lock
	closed  bool
}

func (w *waiter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

type lockState uint8

const (
	lockHeld lockState = iota
	lockReleased
	lockLost
)

// Locker is a [Backend]'s [coord.Locker]. Leases on one resource are handed
// to waiters first come, first served across all nodes of the hub: a
// release gives the lease at once to the longest waiting Acquire, so a
// holder that releases and acquires again queues behind it.
//
// A Locker is safe for concurrent use by multiple goroutines.
type Locker struct{ n *Backend }

// lock is one lease from [Locker.Acquire]. It is safe for concurrent use
// by multiple goroutines.
type lock struct {
	node      *Backend
	res       leaseRes
	token     string
	fence     int64
	ttl       time.Duration
	autoRenew bool
	write     bool // a read-write resource's write lease

	// Guarded by hub.lmu.
	state    lockState
	deadline time.Time
	timerAt  time.Time
	heapIdx  int
	done     chan struct{}
}

// Acquire takes the lease on resource, waiting while someone else holds
// it as [coord.Locker] describes. A waiting Acquire is queued behind the
// earlier ones and woken at once by the release (or expiry) that hands it
// the lease; the retry delay only bounds each wait when no hand-off
// comes. It may return [coord.ErrNotAcquired] (joined with ctx.Err() when
// ctx ended the wait), [coord.ErrInvalid] or [coord.ErrClosed].
func (lk *Locker) Acquire(ctx context.Context, name string, opts ...coord.LockOption) (coord.Lock, error) {
	n := lk.n
	if err := driver.ValidateName("resource", name); err != nil {
		return nil, err
	}
	if d := n.lockDefaults; len(d) > 0 {
		opts = append(d, opts...)
	}
	o, err := driver.NewLockOptions(opts...)
	if err != nil {
		return nil, err
	}
	if n.closed.Load() {
		return nil, errClosed("Acquire")
	}
	if err := ctx.Err(); err != nil {
		return nil, errors.Join(coord.ErrNotAcquired, err)
	}
	h := n.hub
	token := secret.LockToken() // outside the lock; wasted only when held
	h.lmu.Lock()
	if n.closed.Load() {
		h.lmu.Unlock()
		return nil, errClosed("Acquire")
	}
	now := time.Now()
	r := h.resources[name]
	if r != nil {
		h.expireLocked(r, now)
		r = h.resources[name] // dropped when the expiry left it idle
	}
	if r == nil {
		r = &resource{name: name}
		h.resources[name] = r
	}
	if r.holder == nil && len(r.waiters) == 0 {
		l := h.grantLocked(r, n, o, now, token)
		h.lmu.Unlock()
		return l, nil
	}
	if o.Retries == 0 {
		h.lmu.Unlock()
		return nil, fmt.Errorf("%w: coord/memory: %q is held", coord.ErrNotAcquired, name)
	}
	w := &waiter{node: n, res: r, opts: o, wake: make(chan struct{}, 1)}
	r.waiters = append(r.waiters, w)
	n.waiters[w] = struct{}{}
	delay := waitDelay(o, r, now)
	h.lmu.Unlock()
	l, err := h.wait(ctx, w, delay)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// waitDelay is how long a waiter sleeps before its next try when no
// hand-off wakes it: the retry delay, cut short by the holder's deadline
// so an expiry is noticed even if the holder's node is late to see it.
func waitDelay(o coord.LockOptions, r leaseRes, now time.Time) time.Duration {
	d := o.RetryDelay
	if d <= 0 && o.Retries < 0 {
		d = coord.DefaultRetryDelay
	}
	if at := r.nextExpiry(); !at.IsZero() {
		if left := at.Sub(now); left < d {
			d = left
		}
	}
	return max(d, 0)
}

// wait waits for w, queued in its resource, to be granted its lease, up
// to its retry budget or until ctx ends.
func (h *Hub) wait(ctx context.Context, w *waiter, delay time.Duration) (*lock, error) {
	r := w.res
	left := w.opts.Retries
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		timedOut := false
		select {
		case <-w.wake:
		case <-t.C:
			timedOut = true
		case <-ctx.Done():
		}
		h.lmu.Lock()
		if l := w.granted; l != nil {
			if ctx.Err() != nil || l.state != lockHeld {
				// Never leave a lease with a caller that gave up.
				if l.state == lockHeld {
					h.endLocked(l, lockReleased)
					r.promoteLocked(h, time.Now())
				}
				h.lmu.Unlock()
				if w.closed || w.node.closed.Load() {
					return nil, errClosed("Acquire")
				}
				return nil, errors.Join(coord.ErrNotAcquired, ctx.Err())
			}
			h.lmu.Unlock()
			return l, nil
		}
		if w.closed {
			h.lmu.Unlock()
			return nil, errClosed("Acquire")
		}
		if err := ctx.Err(); err != nil {
			h.removeWaiterLocked(w)
			h.lmu.Unlock()
			return nil, errors.Join(coord.ErrNotAcquired, err)
		}
		if !timedOut {
			// A wake-up without a grant: keep waiting on the same timer.
			h.lmu.Unlock()
			continue
		}
		// A try: the holder may have run out.
		now := time.Now()
		r.expireLocked(h, now)
		if l := w.granted; l != nil {
			h.lmu.Unlock()
			return l, nil
		}
		if left > 0 {
			left--
		}
		if left == 0 {
			h.removeWaiterLocked(w)
			h.lmu.Unlock()
			return nil, fmt.Errorf("%w: coord/memory: %q is held", coord.ErrNotAcquired, r.resName())
		}
		t.Reset(waitDelay(w.opts, r, now))
		h.lmu.Unlock()
	}
}

// Locked reports whether anyone holds resource now.
func (lk *Locker) Locked(ctx context.Context, resource string) (bool, error) {
	if err := driver.ValidateName("resource", resource); err != nil {
		return false, err
	}
	if lk.n.closed.Load() {
		return false, errClosed("Locked")
	}
	h := lk.n.hub
	h.lmu.Lock()
	defer h.lmu.Unlock()
	r := h.resources[resource]
	if r == nil {
		return false, nil
	}
	h.expireLocked(r, time.Now())
	return r.holder != nil, nil
}

// ForceRelease ends the lease on resource whoever holds it, closes the
// holder's Done at once and hands the resource to the next waiter. It
// reports whether there was a lease.
func (lk *Locker) ForceRelease(ctx context.Context, resource string) (bool, error) {
	if err := driver.ValidateName("resource", resource); err != nil {
		return false, err
	}
	if lk.n.closed.Load() {
		return false, errClosed("ForceRelease")
	}
	h := lk.n.hub
	h.lmu.Lock()
	defer h.lmu.Unlock()
	r := h.resources[resource]
	if r == nil {
		return false, nil
	}
	now := time.Now()
	h.expireLocked(r, now)
	if r.holder == nil {
		return false, nil
	}
	h.endLocked(r.holder, lockLost)
	h.promoteLocked(r, now)
	return true, nil
}

// Held returns the Locker leases this node holds whose deadline has not
// passed (not its read-write leases, permits or leaderships).
func (lk *Locker) Held() []coord.Lock {
	n := lk.n
	if n.closed.Load() {
		return nil
	}
	h := n.hub
	h.lmu.Lock()
	defer h.lmu.Unlock()
	now := time.Now()
	out := make([]coord.Lock, 0, len(n.timers))
	for _, l := range n.timers {
		if _, ok := l.res.(*resource); ok && now.Before(l.deadline) {
			out = append(out, l)
		}
	}
	return out
}

// removeWaiterLocked takes w out of its resource's queue and its node's
// books, dropping the resource if that leaves it idle.
func (h *Hub) removeWaiterLocked(w *waiter) {
	w.res.removeWaiter(w)
	delete(w.node.waiters, w)
	if r, ok := w.res.(*resource); ok {
		h.dropIdleLocked(r)
	}
}

// dropIdleLocked forgets r once it has neither a holder nor waiters.
func (h *Hub) dropIdleLocked(r *resource) {
	if r.holder == nil && len(r.waiters) == 0 && h.resources[r.name] == r {
		delete(h.resources, r.name)
	}
}

// grantLocked makes n the holder of r with a new fence (from the hub's
// one counter) and token.
func (h *Hub) grantLocked(r *resource, n *Backend, o coord.LockOptions, now time.Time, token string) *lock {
	l := h.newLeaseLocked(r, n, o, now, token)
	r.holder = l
	return l
}

// newLeaseLocked makes a lease on r held by n, with a new fence (from the
// hub's one counter) and token, and schedules its timer; the caller adds
// it to r's holders.
func (h *Hub) newLeaseLocked(r leaseRes, n *Backend, o coord.LockOptions, now time.Time, token string) *lock {
	l := new(lock)
	h.initLeaseLocked(l, r, n, o, now, token)
	return l
}

// initLeaseLocked makes l, zero, a new lease as newLeaseLocked does.
func (h *Hub) initLeaseLocked(l *lock, r leaseRes, n *Backend, o coord.LockOptions, now time.Time, token string) {
	h.fence++
	*l = lock{
		node:      n,
		res:       r,
		token:     token,
		fence:     h.fence,
		ttl:       o.TTL,
		autoRenew: o.AutoRenew,
		deadline:  now.Add(o.TTL),
		heapIdx:   -1,
	}
	n.scheduleLocked(l, now)
}

// scheduleLocked sets l's next timer event: its renewal with auto-renew,
// else its deadline.
func (n *Backend) scheduleLocked(l *lock, now time.Time) {
	at := l.deadline
	if l.autoRenew {
		at = now.Add(l.ttl / 3)
	}
	l.timerAt = at
	if l.heapIdx >= 0 {
		n.timers.fix(l.heapIdx)
	} else {
		n.timers.push(l)
	}
	// Wake the timer goroutine only when it would sleep past l's event.
	if n.timers[0] == l && (n.timerNext.IsZero() || at.Before(n.timerNext)) {
		n.wakeTimer()
	}
}

// endLocked ends l's lease (if it is still held) with state st.
func (h *Hub) endLocked(l *lock, st lockState) {
	if l.state != lockHeld {
		return
	}
	l.state = st
	l.res.dropLocked(l)
	n := l.node
	if l.heapIdx >= 0 {
		n.timers.remove(l.heapIdx)
	}
	if l.done != nil {
		close(l.done)
	}
}

// expireLocked ends r's leases whose deadline passed, and hands r on.
func (h *Hub) expireLocked(r leaseRes, now time.Time) { r.expireLocked(h, now) }

// promoteLocked hands what is free of r to its waiters, or drops r from
// the hub when it is idle.
func (h *Hub) promoteLocked(r leaseRes, now time.Time) { r.promoteLocked(h, now) }

// promoteLocked hands a free r to its longest waiting Acquire, or drops
// r from the hub when nobody waits.
func (r *resource) promoteLocked(h *Hub, now time.Time) {
	if r.holder != nil {
		return
	}
	if len(r.waiters) == 0 {
		h.dropIdleLocked(r)
		return
	}
	w := r.waiters[0]
	r.waiters = slices.Delete(r.waiters, 0, 1)
	delete(w.node.waiters, w)
	w.granted = h.grantLocked(r, w.node, w.opts, now, secret.LockToken())
	w.signal()
}

// runDueLocked handles n's timer events due by now and returns the time
// of the next one (zero when there is none).
func (h *Hub) runDueLocked(n *Backend, now time.Time) time.Time {
	for len(n.timers) > 0 {
		l := n.timers[0]
		if now.Before(l.timerAt) {
			return l.timerAt
		}
		if !now.Before(l.deadline) {
			r := l.res
			h.endLocked(l, lockLost)
			h.promoteLocked(r, now)
			continue
		}
		if l.autoRenew {
			if d := now.Add(l.ttl); d.After(l.deadline) {
				l.deadline = d
			}
			l.timerAt = now.Add(l.ttl / 3)
		} else {
			l.timerAt = l.deadline
		}
		n.timers.fix(0)
	}
	return time.Time{}
}

// Resource returns the name the lease is on.
func (l *lock) Resource() string { return l.res.resName() }

// Token returns the lease's secret token.
func (l *lock) Token() string { return l.token }

// Fence returns the lease's fencing token.
func (l *lock) Fence() int64 { return l.fence }

// notHeldLocked explains why l is not held: [coord.ErrNotHeld] when
// someone else holds the resource, [coord.ErrExpired] when nobody does.
func (l *lock) notHeldLocked() error { return l.res.notHeldLocked(l) }

func (r *resource) notHeldLocked(l *lock) error {
	if cur := l.node.hub.resources[r.name]; cur != nil && cur.holder != nil {
		return fmt.Errorf("%w: coord/memory: %q has another holder", coord.ErrNotHeld, r.name)
	}
	return fmt.Errorf("%w: coord/memory: lease on %q ended", coord.ErrExpired, r.name)
}

// TTL returns the time left on the lease. May return [coord.ErrNotHeld]
// or [coord.ErrExpired].
func (l *lock) TTL(ctx context.Context) (time.Duration, error) {
	h := l.node.hub
	h.lmu.Lock()
	defer h.lmu.Unlock()
	now := time.Now()
	h.expireLocked(l.res, now)
	if l.state != lockHeld {
		if l.node.closed.Load() {
			return 0, errors.Join(errClosed("Lock.TTL"), l.notHeldLocked())
		}
		return 0, l.notHeldLocked()
	}
	return l.deadline.Sub(now), nil
}

// Extend sets the lease to end ttl from now if it is still held. May
// return [coord.ErrNotHeld], [coord.ErrExpired] or [coord.ErrInvalid].
func (l *lock) Extend(ctx context.Context, ttl time.Duration) error {
	if err := driver.ValidateTTL("lock TTL", ttl); err != nil {
		return err
	}
	h := l.node.hub
	h.lmu.Lock()
	defer h.lmu.Unlock()
	now := time.Now()
	h.expireLocked(l.res, now)
	if l.state != lockHeld {
		if l.node.closed.Load() {
			return errors.Join(errClosed("Lock.Extend"), l.notHeldLocked())
		}
		return l.notHeldLocked()
	}
	l.deadline = now.Add(ttl)
	if !l.autoRenew {
		l.node.scheduleLocked(l, now)
	}
	return nil
}

// Release ends the lease and hands the resource to the next waiter at
// once. Releasing a lease this Lock already released returns nil. May
// return [coord.ErrNotHeld] or [coord.ErrExpired] when the lease was lost.
func (l *lock) Release(ctx context.Context) error {
	h := l.node.hub
	h.lmu.Lock()
	defer h.lmu.Unlock()
	now := time.Now()
	h.expireLocked(l.res, now)
	switch l.state {
	case lockReleased:
		return nil
	case lockHeld:
		h.endLocked(l, lockReleased)
		h.promoteLocked(l.res, now)
		return nil
	}
	return l.notHeldLocked()
}

// Done returns a channel closed when the lease ends: released, force
// released, or expired without renewal. The node's timer goroutine closes
// it at the deadline, whether or not anyone looks at the lease.
func (l *lock) Done() <-chan struct{} {
	h := l.node.hub
	h.lmu.Lock()
	defer h.lmu.Unlock()
	if l.done == nil {
		if l.state != lockHeld {
			return h.closedCh
		}
		l.done = make(chan struct{})
	}
	return l.done
}

// String describes the lease without its token.
func (l *lock) String() string {
	return fmt.Sprintf("memory.Lock{resource: %q, fence: %d, token: %s}", l.res.resName(), l.fence, secret.Redact(l.token))
}
