package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

// Locker is the Backend's [coord.Locker]. A lease is a key holding the
// holder's token with a PX expiry; its fence is the greater of the last
// fence + 1 (a counter in the same hash slot) and the server clock in
// microseconds (lua/lock_lib.lua).
//
// Waiting: an Acquire that finds the resource held queues behind the
// other waiters of this instance for that resource (FIFO). Only the head
// of the local queue contends in Redis: it subscribes to the resource's
// wake channel (one subscription per resource, shared by the instance's
// waiters, on the Backend's subscriber connection) before its next try, so
// no release is missed, and sleeps until a release wakes it or until the
// holder's remaining TTL (PTTL), RetryDelay or [Options].HandoffWindow
// passes, whichever is first. A waiter behind others on this instance
// counts each RetryDelay it waits for its turn as one try of its retry
// budget. While waiters queue, a new Acquire on this instance does not
// try ahead of them.
//
// Across instances the waiters queue in Redis (lua/lock_queue.lua): a
// try refused to a waiting Acquire puts its instance's entry in the
// resource's queue (a ZSET in the lease's hash slot), in the order the
// instances first found the lease held, and each later try renews it; an
// entry not renewed for five HandoffWindows after its last try (250ms by
// default) is passed over until it is renewed, so a dead waiter (a killed
// process) holds the queue up for at most that long, and a stalled one
// misses its turns meanwhile but not its place. A release that finds
// other instances queued reserves the lease for the oldest (a marker
// value in the lease key, which no token can equal, until that entry's
// expiry) and wakes only that instance; a release with nobody queued
// publishes nothing. Only the reserved instance's head may take a
// reserved lease: a newcomer's try, the releaser coming straight back, a
// later waiter, or a peer using plain SET NX, finds it held. So waiters
// are served in the order their instances asked, with these tolerances:
// the instance that releases goes to the back of the queue (its waiters
// queue again); a lease that ends without a release (its TTL ran out), or
// whose reservation lapsed, may go to a newcomer that tries before the
// queued waiters do; and a stalled waiter is passed over, as above.
//
// A release by this instance while a local waiter queues hands the lease
// straight to the local head in its own round trip (the lease key takes
// the head's new token and TTL, and a new fence is drawn:
// lua/lock_handoff.lua), so the head gets it without a round trip of its
// own. After [Options].LocalHandoffs handoffs in a row, a release yields:
// when another instance is queued, it reserves the lease for it instead,
// and the local head queues again at the back. So another instance's
// waiter waits at most one local streak per instance queued ahead of it.
// With HandoffWindow negative there is no queue in Redis: every release
// wakes every instance's head, and the first try wins.
//
// A Locker is safe for concurrent use by multiple goroutines.
type Locker struct {
	b    *Backend
	excl *leaseKind // the kind of the Locker's own leases

	// The other kinds of lease, on the same engine.
	leases *leaseWaits
	rw     *RWLocker
	sem    *Semaphores
	elect  *Elector

	mu        sync.Mutex
	held      map[*lock]struct{}
	queues    map[string]*waitq // by resource
	byChannel map[string]*waitq // by wake channel
	renew     map[*lock]time.Time
	orphans   map[string]*orphan // by token
	kick      chan struct{}      // renewals changed
	reapKick  chan struct{}      // orphans added
	sweepAt   int                // size of held at which expired leases are swept
	epoch     time.Time          // origin of the leases' monotonic deadlines
	wdRunning bool
	wdCancel  context.CancelFunc
	wdDone    chan struct{}
	stopped   bool
}

func newLocker(b *Backend) *Locker {
	lk := &Locker{
		b:         b,
		held:      map[*lock]struct{}{},
		queues:    map[string]*waitq{},
		byChannel: map[string]*waitq{},
		renew:     map[*lock]time.Time{},
		orphans:   map[string]*orphan{},
		kick:      make(chan struct{}, 1),
		reapKick:  make(chan struct{}, 1),
		sweepAt:   64,
		epoch:     time.Now(),
	}
	lk.excl = &leaseKind{
		name: "lease", exclusive: true,
		release: b.sc.lockRelease, extend: b.sc.lockExtend, ttl: b.sc.lockTTL,
		woken: lk.localWake,
	}
	lk.leases = newLeaseWaits(b)
	lk.rw = newRWLocker(lk)
	lk.sem = newSemaphores(lk)
	lk.elect = newElector(lk)
	return lk
}

// exclRelArgs returns the release script's arguments after the token for
// the exclusive lease key: a release that reserves nothing for waiters.
func (lk *Locker) exclRelArgs(key string) []any {
	return []any{lk.b.keys.wakeChannel(key), lk.b.idArg, 0}
}

// releaseArgs returns the kind's release script arguments after the
// token: l.relArgs, made here for an exclusive lease, whose Release passes
// its own (exclReleaseArgs) and needs these only when the watchdog
// releases it.
func (l *lock) releaseArgs() []any {
	if l.relArgs == nil && l.kind == l.lk.excl {
		return l.lk.exclRelArgs(l.key)
	}
	return l.relArgs
}

// exclReleaseArgs returns the arguments of lua/lock_release.lua for
// Release of an exclusive lease, the token first. The handoff window and
// the count of this instance's subscribers to the wake channel (which
// takes the subscriber's lock) are read only without the queue keys
// (every waiter is woken then), so with the queue they are not sent.
func (l *lock) exclReleaseArgs() []any {
	b := l.lk.b
	ch := b.keys.wakeChannel(l.key)
	if l.lk.queueOn() {
		return []any{l.tokenArg, ch, b.idArg}
	}
	return []any{l.tokenArg, ch, b.idArg, b.handoffMs, b.sub.ownArg(ch)}
}

// As forwards to [Backend.As].
func (lk *Locker) As(target any) bool { return lk.b.As(target) }

// Acquire takes the lease on resource; see [Locker] for how it waits.
// May return [coord.ErrNotAcquired] (joined with ctx.Err() when ctx ended
// the wait), [coord.ErrInvalid], [coord.ErrClosed] or
// [coord.ErrUnavailable].
func (lk *Locker) Acquire(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	b := lk.b
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	if err := driver.ValidateName("resource", resource); err != nil {
		return nil, err
	}
	if d := b.opts.LockDefaults; len(d) > 0 {
		opts = append(d[:len(d):len(d)], opts...)
	}
	o, err := driver.NewLockOptions(opts...)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, errors.Join(notAcquired(resource), err)
	}
	tries := 0
	if o.Retries == 0 || !lk.localWaiters(resource) {
		l, _, err := lk.try(ctx, resource, o, false)
		if err != nil {
			return nil, err // not l: a nil *lock would make a non-nil Lock
		}
		if l != nil {
			return l, nil
		}
		tries = 1
		if o.Retries == 0 {
			return nil, notAcquired(resource)
		}
	}
	return lk.wait(ctx, resource, o, tries)
}

// localWaiters reports whether waiters of this instance queue for
// resource.
func (lk *Locker) localWaiters(resource string) bool {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	q := lk.queues[resource]
	return q != nil && len(q.waiters) > 0
}

// minWait is the shortest wait between two tries of a waiting Acquire, so
// that a zero RetryDelay does not spin.
const minWait = time.Millisecond

func notAcquired(resource string) error {
	return fmt.Errorf("%w: coord/redis: %q is held", coord.ErrNotAcquired, resource)
}

// try runs the acquire script once. It returns the lease, or the
// holder's remaining TTL (negative when unknown).
func (lk *Locker) try(ctx context.Context, resource string, o coord.LockOptions, waiter bool) (*lock, time.Duration, error) {
	b := lk.b
	key, fenceKey := b.keys.lockKeys(resource)
	token := b.newToken()
	start := time.Now()
	// The script runs to completion even when ctx ends meanwhile, so that
	// its outcome is known and a lease never stays behind unowned.
	rctx := ctx
	if ctx.Done() != nil {
		rctx = context.WithoutCancel(ctx)
	}
	var tokenArg any = token // boxed once for acquire and release
	keys, args := lk.acquireArgs(key, fenceKey, tokenArg, o, waiter)
	res, acked, err := b.runAcquire(rctx, b.sc.lockAcquire, keys, args...)
	if err != nil {
		// The outcome is unknown (the server may run the script later,
		// after a timeout): make sure the lease is not left held. A
		// refusal for lack of memory is known to have written nothing.
		if !isOOM(err) {
			lk.addOrphan(key, token, o.TTL)
		}
		return nil, 0, b.fail(ctx, "acquire", err)
	}
	b.setConnState(coord.Connected)
	if res < 0 {
		return nil, time.Duration(-res-2) * time.Millisecond, nil
	}
	if err := b.replicaShort(lk.excl.name, resource, acked); err != nil {
		lk.releaseToken(key, token, o.TTL)
		return nil, 0, err
	}
	l := lk.newLockArgs(resource, key, token, tokenArg, res, o)
	if err := ctx.Err(); err != nil {
		lk.releaseToken(key, token, o.TTL)
		return nil, 0, errors.Join(notAcquired(resource), err)
	}
	if !lk.register(l, start) {
		lk.releaseToken(key, token, o.TTL)
		return nil, 0, errors.Join(notAcquired(resource), b.checkOpen())
	}
	return l, 0, nil
}

// newLock returns the Lock for a lease token holds with fence, not yet
// registered.
func (lk *Locker) newLock(resource, token string, fence int64, o coord.LockOptions) *lock {
	return lk.newLockArgs(resource, lk.b.keys.lockKey(resource), token, token, fence, o)
}

func (lk *Locker) newLockArgs(resource, key, token string, tokenArg any, fence int64, o coord.LockOptions) *lock {
	return &lock{
		lk: lk, kind: lk.excl, resource: resource, key: key, token: token, fence: fence,
		keys: []string{key}, tokenArg: tokenArg,
		ttl: o.TTL, autoRenew: o.AutoRenew, done: make(chan struct{}),
	}
}

// releaseToken deletes the lease if token holds it; when that fails, the
// watchdog keeps trying (see orphan).
func (lk *Locker) releaseToken(key, token string, ttl time.Duration) {
	b := lk.b
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.sc.lockRelease.Run(ctx, b.client, []string{key}, token, b.keys.wakeChannel(key), b.idArg, 0).Err(); err != nil {
		lk.addOrphan(key, token, ttl)
	}
}

// register records a new lease: its local deadline (start + TTL on the
// monotonic clock, start taken before the request was sent) and its
// renewal. It reports false after Close.
func (lk *Locker) register(l *lock, start time.Time) bool {
	l.mu.Lock()
	l.setDeadlineLocked(start, l.ttl)
	l.mu.Unlock()
	lk.mu.Lock()
	if lk.stopped {
		lk.mu.Unlock()
		l.finish()
		return false
	}
	defer lk.mu.Unlock()
	if len(lk.held) >= lk.sweepAt {
		// Forget leases that ran out unreleased and unwatched.
		for o := range lk.held {
			if o.gone.Load() || !o.live() {
				delete(lk.held, o)
			}
		}
		lk.sweepAt = max(2*len(lk.held), 64)
	}
	lk.held[l] = struct{}{}
	if l.autoRenew {
		lk.renew[l] = start.Add(l.ttl / 3)
		lk.startWatchdogLocked()
		select {
		case lk.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// forget removes a lease that ended from the instance's books.
func (lk *Locker) forget(l *lock) {
	lk.mu.Lock()
	delete(lk.held, l)
	delete(lk.renew, l)
	lk.mu.Unlock()
}

// Locked reports whether anyone holds resource now.
func (lk *Locker) Locked(ctx context.Context, resource string) (bool, error) {
	b := lk.b
	if err := b.checkOpen(); err != nil {
		return false, err
	}
	if err := driver.ValidateName("resource", resource); err != nil {
		return false, err
	}
	n, err := b.sc.lockLocked.Run(ctx, b.client, []string{b.keys.lockKey(resource)}).Int64()
	if err := b.fail(ctx, "locked", err); err != nil {
		return false, err
	}
	return n == 1, nil
}

// ForceRelease deletes the lease on resource whoever holds it and wakes
// its waiters. It reports whether there was a lease.
func (lk *Locker) ForceRelease(ctx context.Context, resource string) (bool, error) {
	b := lk.b
	if err := b.checkOpen(); err != nil {
		return false, err
	}
	if err := driver.ValidateName("resource", resource); err != nil {
		return false, err
	}
	key := b.keys.lockKey(resource)
	n, err := b.sc.lockForce.Run(ctx, b.client, []string{key}, b.keys.wakeChannel(key), b.opts.InstanceID).Int64()
	if err := b.fail(ctx, "force release", err); err != nil {
		return false, err
	}
	if n == 1 {
		lk.localWake(resource)
	}
	return n == 1, nil
}

// Held returns the exclusive leases (those of [Locker.Acquire]) this
// instance holds and believes are live.
func (lk *Locker) Held() []coord.Lock {
	return lk.heldOf(lk.excl)
}

// heldOf returns the leases of kind this instance holds and believes are
// live.
func (lk *Locker) heldOf(kind *leaseKind) []coord.Lock {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	out := make([]coord.Lock, 0, len(lk.held))
	for l := range lk.held {
		if l.kind == kind && !l.gone.Load() && l.live() {
			out = append(out, l)
		}
	}
	return out
}

// shutdown stops the election observers and the watchdog, and releases
// every lease held, of every kind.
func (lk *Locker) shutdown(ctx context.Context) error {
	lk.leases.shutdown()
	lk.mu.Lock()
	lk.stopped = true
	cancel, done := lk.wdCancel, lk.wdDone
	locks := make([]*lock, 0, len(lk.held))
	for l := range lk.held {
		locks = append(locks, l)
	}
	orphans := make([]*orphan, 0, len(lk.orphans))
	for _, o := range lk.orphans {
		orphans = append(orphans, o)
	}
	lk.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	for _, o := range orphans {
		lk.reap(ctx, o) // one last try
	}
	var errs []error
	for _, l := range locks {
		err := l.Release(ctx)
		if err != nil && !errors.Is(err, coord.ErrNotHeld) {
			errs = append(errs, err)
		}
		l.finish() // Done closes even when the release failed
	}
	return errors.Join(errs...)
}
