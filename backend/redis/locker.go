package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/secret"
)

// Locker is the Backend's [coord.Locker]. A lease is a key holding the
// holder's token with a PX expiry; its fence is the greater of the last
// fence + 1 (a counter in the same hash slot) and the server clock in
// microseconds (lua/lock_lib.lua).
//
// Waiting: an Acquire that finds the resource held queues behind the
// other waiters of this instance for that resource (FIFO). Only the head
// of the queue contends in Redis: it subscribes to the resource's wake
// channel (one subscription per resource, shared by the instance's
// waiters, on the Backend's subscriber connection) before its next try, so
// no release is missed, and sleeps until a release wakes it or until the
// holder's remaining TTL (PTTL) or RetryDelay passes, whichever is first.
// A waiter behind others on this instance counts each RetryDelay it waits
// for its turn as one try of its retry budget. A release by this instance
// hands the lease straight to the local head in its own round trip (the
// lease key takes the head's new token and TTL, and a new fence is drawn:
// lock_handoff.lua), so the head gets it without a round trip of its own;
// after [Options].LocalHandoffs handoffs in a row, a release yields
// instead: it publishes the wake-up and, when another instance's waiter
// listens, releases the lease to the waiters (see below), the local head
// then trying as a newcomer. A release elsewhere wakes the local head
// through the channel. While waiters queue, a new
// Acquire on this instance does not try ahead of them. Across instances,
// a release whose wake-up reached another instance (a waiter there) leaves
// the lease reserved for waiters for [Options].HandoffWindow (a marker
// value in the lease key, which no token can equal): a newcomer's first
// try, including the releaser coming straight back, finds it held, and
// only a waiter's retry takes it. So the releaser does not re-win the
// lease it hands over, on this instance or elsewhere. Every instance's
// head is woken by a release (there is no queue in Redis), and the
// holder's expiry bounds every wait. In a Cluster, PUBLISH counts only
// the subscribers of the node it ran on, so the reservation is made, and
// a local handoff yields, less often there.
//
// A Locker is safe for concurrent use by multiple goroutines.
type Locker struct {
	b *Backend

	mu        sync.Mutex
	held      map[*lock]struct{}
	queues    map[string]*waitq // by resource
	byChannel map[string]*waitq // by wake channel
	renew     map[*lock]time.Time
	orphans   map[string]*orphan // by token
	kick      chan struct{}
	sweepAt   int       // size of held at which expired leases are swept
	epoch     time.Time // origin of the leases' monotonic deadlines
	wdRunning bool
	wdCancel  context.CancelFunc
	wdDone    chan struct{}
	stopped   bool
}

type waitq struct {
	resource, channel string
	waiters           []*waiter
	subscribed        chan struct{} // closed once the subscription was requested
	ready             <-chan struct{}
	subErr            error
	streak            int // local handoffs since the last yield
}

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

// grant is the outcome of a local handoff (see [Options].LocalHandoffs).
type grant struct {
	ok      bool      // token holds the lease now, with fence
	yielded bool      // the release yielded to other instances' waiters
	token   string    // the new lease's
	fence   int64     // the new lease's
	start   time.Time // taken before the handoff was sent: the lease's local deadline counts from it
}

func newLocker(b *Backend) *Locker {
	return &Locker{
		b:         b,
		held:      map[*lock]struct{}{},
		queues:    map[string]*waitq{},
		byChannel: map[string]*waitq{},
		renew:     map[*lock]time.Time{},
		orphans:   map[string]*orphan{},
		kick:      make(chan struct{}, 1),
		sweepAt:   64,
		epoch:     time.Now(),
	}
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
	if err := coord.ValidateName("resource", resource); err != nil {
		return nil, err
	}
	if d := b.opts.LockDefaults; len(d) > 0 {
		opts = append(d[:len(d):len(d)], opts...)
	}
	o, err := coord.NewLockOptions(opts...)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, errors.Join(notAcquired(resource), err)
	}
	lk.mu.Lock()
	q := lk.queues[resource]
	queued := q != nil && len(q.waiters) > 0
	lk.mu.Unlock()
	tries := 0
	if !queued || o.Retries == 0 {
		l, _, err := lk.try(ctx, resource, o, false)
		if l != nil || err != nil {
			return l, err
		}
		tries = 1
		if o.Retries == 0 {
			return nil, notAcquired(resource)
		}
	}
	return lk.wait(ctx, resource, o, tries)
}

// minWait is the shortest wait between two tries of a waiting Acquire, so
// that a zero RetryDelay does not spin.
const minWait = time.Millisecond

func notAcquired(resource string) error {
	return fmt.Errorf("coord/redis: %q is held: %w", resource, coord.ErrNotAcquired)
}

// try runs the acquire script once. It returns the lease, or the
// holder's remaining TTL (negative when unknown).
func (lk *Locker) try(ctx context.Context, resource string, o coord.LockOptions, waiter bool) (*lock, time.Duration, error) {
	b := lk.b
	key, fenceKey := b.keys.lockKeys(resource)
	token := secret.LockToken()
	start := time.Now()
	// The script runs to completion even when ctx ends meanwhile, so that
	// its outcome is known and a lease never stays behind unowned.
	rctx := ctx
	if ctx.Done() != nil {
		rctx = context.WithoutCancel(ctx)
	}
	keys := []string{key, fenceKey}
	var tokenArg any = token // boxed once for acquire and release
	who := "0"
	if waiter {
		who = "1"
	}
	var res int64
	var err error
	acked := int64(-1)
	if b.opts.LockReplicas > 0 {
		res, acked, err = lk.acquireAndWait(rctx, keys, tokenArg, o.TTL.Milliseconds(), who)
	} else {
		res, err = b.batch.run(rctx, b.sc.lockAcquire, keys, tokenArg, o.TTL.Milliseconds(), who).Int64()
	}
	if err != nil {
		// The outcome is unknown (the server may run the script later,
		// after a timeout): make sure the lease is not left held.
		lk.addOrphan(key, token, o.TTL)
		return nil, 0, b.fail(ctx, "acquire", err)
	}
	b.setConnState(coord.Connected)
	if res < 0 {
		return nil, time.Duration(-res-2) * time.Millisecond, nil
	}
	if acked >= 0 && acked < int64(b.opts.LockReplicas) {
		// A failover now could lose the lease and its fence: give it up.
		lk.releaseToken(key, token, o.TTL)
		return nil, 0, fmt.Errorf("%w: coord/redis: acquire %q: %d of %d replicas acknowledged the lease within %v",
			coord.ErrUnavailable, resource, acked, b.opts.LockReplicas, b.opts.LockReplicaTimeout)
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

// acquireAndWait runs the acquire script and WAIT (for
// Options.LockReplicas replicas) in one pipeline on one connection (in a
// Cluster, the master of the lease's slot), so that WAIT covers the
// script's writes. It returns the script's result and how many replicas
// acknowledged.
func (lk *Locker) acquireAndWait(ctx context.Context, keys []string, args ...any) (int64, int64, error) {
	b := lk.b
	var node goredis.Cmdable = b.client
	if cc, ok := b.client.(*goredis.ClusterClient); ok {
		m, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			return 0, 0, err
		}
		node = m
	}
	timeout := b.opts.LockReplicaTimeout
	for _, full := range []bool{false, true} {
		var ec, wc *goredis.Cmd
		_, err := node.Pipelined(ctx, func(p goredis.Pipeliner) error {
			if full {
				ec = b.sc.lockAcquire.Eval(ctx, p, keys, args...)
			} else {
				ec = b.sc.lockAcquire.EvalSha(ctx, p, keys, args...)
			}
			wc = p.Do(ctx, "wait", b.opts.LockReplicas, timeout.Milliseconds())
			return nil
		})
		if !full && goredis.HasErrorPrefix(ec.Err(), "NOSCRIPT") {
			continue // not cached on this server: send the script itself
		}
		if err != nil {
			return 0, 0, err
		}
		res, err := ec.Int64()
		if err != nil {
			return 0, 0, err
		}
		acked, err := wc.Int64()
		if err != nil {
			return 0, 0, err
		}
		return res, acked, nil
	}
	return 0, 0, errors.New("coord/redis: acquire script not accepted")
}

// newLock returns the Lock for a lease token holds with fence, not yet
// registered.
func (lk *Locker) newLock(resource, token string, fence int64, o coord.LockOptions) *lock {
	return lk.newLockArgs(resource, lk.b.keys.lockKey(resource), token, token, fence, o)
}

func (lk *Locker) newLockArgs(resource, key, token string, tokenArg any, fence int64, o coord.LockOptions) *lock {
	return &lock{
		lk: lk, resource: resource, key: key, token: token, fence: fence,
		keys: []string{key}, tokenArg: tokenArg,
		ttl: o.TTL, autoRenew: o.AutoRenew, done: make(chan struct{}),
	}
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
	w.pending = true
	q.streak++
	yield := q.streak > b.opts.LocalHandoffs
	if yield {
		q.streak = 0
	}
	return w, yield
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

// orphan is a lease this instance may hold without a Lock for it: an
// acquire whose reply was lost (a timeout while the server was stalled
// may still run the script later), or a lease whose Release failed. The
// watchdog releases it: it retries the compare-and-delete until it
// releases the lease, or, for an acquire, until a TTL has passed since
// the server first answered one of its tries; for a lease that was held,
// any answer ends it (the token cannot hold the lease again), and so does
// the time by which the lease has expired in Redis.
type orphan struct {
	key, token string
	resource   string    // set for a lease that was held: its local waiters are woken
	until      time.Time // for a lease that was held: it has expired in Redis by then
	ttl        time.Duration
	next       time.Time     // when to try next
	backoff    time.Duration // between tries
	answered   time.Time     // when the server first answered; zero before
}

// addOrphan records an acquire of unknown outcome for the watchdog.
func (lk *Locker) addOrphan(key, token string, ttl time.Duration) {
	lk.addOrphanOf(&orphan{key: key, token: token, ttl: ttl})
}

// releaseLater records a held lease whose Release failed, for the
// watchdog to release. l.mu is held.
func (lk *Locker) releaseLater(l *lock) {
	// A renewal sent before the local deadline moved the expiry in Redis
	// at most a TTL past it.
	until := l.deadline.Add(l.ttl)
	lk.addOrphanOf(&orphan{key: l.key, token: l.token, resource: l.resource, ttl: l.ttl, until: until})
}

func (lk *Locker) addOrphanOf(o *orphan) {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	if lk.stopped {
		return
	}
	o.next, o.backoff = time.Now(), 20*time.Millisecond
	lk.orphans[o.token] = o
	lk.startWatchdogLocked()
	select {
	case lk.kick <- struct{}{}:
	default:
	}
}

// reap tries to release an orphan; it reports whether to keep it.
func (lk *Locker) reap(ctx context.Context, o *orphan) bool {
	b := lk.b
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	n, err := b.sc.lockRelease.Run(rctx, b.client, []string{o.key}, o.token, b.keys.wakeChannel(o.key), b.idArg, 0).Int64()
	now := time.Now()
	switch {
	case err != nil:
		if !o.until.IsZero() && now.After(o.until) {
			return false // the lease has expired in Redis
		}
	case n == 1 && o.resource != "":
		b.opts.Logger.Info("coord/redis: released a lease whose Release had failed", "resource_tag", secret.Redact(o.resource))
		lk.localWake(o.resource)
		return false
	case n == 1:
		b.opts.Logger.Info("coord/redis: released a lease whose acquire reply was lost")
		return false
	case o.resource != "":
		return false // expired, or someone else holds it: not ours any more
	case o.answered.IsZero():
		o.answered = now
	case now.Sub(o.answered) > o.ttl:
		return false
	}
	o.next = now.Add(o.backoff)
	o.backoff = min(2*o.backoff, 500*time.Millisecond)
	return true
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

// Locked reports whether anyone holds resource now.
func (lk *Locker) Locked(ctx context.Context, resource string) (bool, error) {
	b := lk.b
	if err := b.checkOpen(); err != nil {
		return false, err
	}
	if err := coord.ValidateName("resource", resource); err != nil {
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
	if err := coord.ValidateName("resource", resource); err != nil {
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

// Held returns the leases this instance holds and believes are live.
func (lk *Locker) Held() []coord.Lock {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	out := make([]coord.Lock, 0, len(lk.held))
	for l := range lk.held {
		if !l.gone.Load() && l.live() {
			out = append(out, l)
		}
	}
	return out
}

// shutdown stops the watchdog and releases every lease held.
func (lk *Locker) shutdown(ctx context.Context) error {
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

// startWatchdogLocked starts the one renewal goroutine of the Locker.
// lk.mu is held.
func (lk *Locker) startWatchdogLocked() {
	if lk.wdRunning {
		return
	}
	lk.wdRunning = true
	ctx, cancel := context.WithCancel(context.Background())
	lk.wdCancel = cancel
	lk.wdDone = make(chan struct{})
	go lk.watchdog(ctx)
}

// watchdog renews every auto-renewed lease at a third of its TTL, one
// goroutine for all of them.
func (lk *Locker) watchdog(ctx context.Context) {
	defer close(lk.wdDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var due []*lock
		var dueOrphans []*orphan
		next := now.Add(time.Hour)
		lk.mu.Lock()
		for l, at := range lk.renew {
			if !at.After(now) {
				due = append(due, l)
			} else if at.Before(next) {
				next = at
			}
		}
		for _, o := range lk.orphans {
			if !o.next.After(now) {
				dueOrphans = append(dueOrphans, o)
			} else if o.next.Before(next) {
				next = o.next
			}
		}
		lk.mu.Unlock()
		for _, o := range dueOrphans {
			if ctx.Err() != nil {
				return
			}
			if !lk.reap(ctx, o) {
				lk.mu.Lock()
				delete(lk.orphans, o.token)
				lk.mu.Unlock()
			}
		}
		for _, l := range due {
			if ctx.Err() != nil {
				return
			}
			at, keep := l.renew(ctx)
			lk.mu.Lock()
			if _, ok := lk.renew[l]; ok && keep {
				lk.renew[l] = at
			} else {
				delete(lk.renew, l)
			}
			lk.mu.Unlock()
		}
		if len(due) > 0 || len(dueOrphans) > 0 {
			continue
		}
		timer.Reset(time.Until(next))
		select {
		case <-timer.C:
		case <-lk.kick:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// lock is one lease.
type lock struct {
	lk        *Locker
	resource  string
	key       string
	token     string
	fence     int64
	keys      []string // {key}, for the scripts
	tokenArg  any      // token, boxed once
	autoRenew bool
	done      chan struct{}

	opMu sync.Mutex // serializes Release, Extend and renewals (held across their round trip)

	mu       sync.Mutex // guards the fields below; never held across a round trip
	ttl      time.Duration
	deadline time.Time
	timer    *time.Timer // closes Done at the deadline; made by the first Done call
	released bool        // released by this Lock
	ended    bool        // Done is closed

	gone  atomic.Bool  // ended, readable without mu
	until atomic.Int64 // the deadline as time since lk.epoch, readable without mu
}

// live reports whether the local deadline is still ahead.
func (l *lock) live() bool { return time.Since(l.lk.epoch) < time.Duration(l.until.Load()) }

// Resource returns the name the lease is on.
func (l *lock) Resource() string { return l.resource }

// Token returns the lease's secret token.
func (l *lock) Token() string { return l.token }

// Fence returns the lease's fencing token.
func (l *lock) Fence() int64 { return l.fence }

// Done returns a channel closed when the lease ends: released, found
// lost, or its local deadline passed without renewal.
func (l *lock) Done() <-chan struct{} {
	l.mu.Lock()
	if l.timer == nil && !l.ended {
		if d := time.Until(l.deadline); d > 0 {
			l.timer = time.AfterFunc(d, l.deadlinePassed)
		} else {
			l.finishLocked()
		}
	}
	l.mu.Unlock()
	return l.done
}

// finish closes Done and takes the lease off the instance's books.
func (l *lock) finish() {
	l.mu.Lock()
	l.finishLocked()
	l.mu.Unlock()
}

func (l *lock) finishLocked() {
	if l.ended {
		return
	}
	l.ended = true
	l.gone.Store(true)
	close(l.done)
	if l.timer != nil {
		l.timer.Stop()
	}
	l.lk.forget(l)
}

// deadlinePassed runs when the local deadline passes without renewal.
func (l *lock) deadlinePassed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.ended && !time.Now().Before(l.deadline) {
		l.finishLocked()
	}
}

// setDeadlineLocked moves the local deadline to start + ttl.
func (l *lock) setDeadlineLocked(start time.Time, ttl time.Duration) {
	l.ttl = ttl
	l.deadline = start.Add(ttl)
	l.until.Store(int64(l.deadline.Sub(l.lk.epoch)))
	if !l.ended && l.timer != nil {
		l.timer.Reset(time.Until(l.deadline))
	}
}

func (l *lock) heldErr(op string, code int64) error {
	if code == 0 {
		return fmt.Errorf("coord/redis: %s lease on %q: %w", op, l.resource, coord.ErrExpired)
	}
	return fmt.Errorf("coord/redis: %s lease on %q: another holder has it: %w", op, l.resource, coord.ErrNotHeld)
}

// Release ends the lease and wakes a waiter. May return
// [coord.ErrNotHeld] or [coord.ErrExpired], or, when Redis could not be
// reached (or ctx ended first), [coord.ErrUnavailable] or ctx's error:
// the lease is given up all the same, whatever Release returns. It is no
// longer renewed, Done closes and Held no longer lists it, and the
// watchdog retries the release in the background until it succeeds, the
// lease has expired, or the Backend closes.
func (l *lock) Release(ctx context.Context) error {
	l.opMu.Lock()
	defer l.opMu.Unlock()
	if l.isReleased() {
		return nil
	}
	if w, yield := l.lk.handoffTarget(l.resource); w != nil {
		return l.handOff(ctx, w, yield)
	}
	b := l.lk.b
	ch := b.keys.wakeChannel(l.key)
	n, err := b.batch.run(ctx, b.sc.lockRelease, l.keys, l.tokenArg, ch, b.idArg, b.handoffMs, b.sub.ownArg(ch)).Int64()
	if err := b.fail(ctx, "release", err); err != nil {
		l.giveUp()
		return err
	}
	l.mu.Lock()
	l.released = l.released || n == 1
	l.finishLocked()
	l.mu.Unlock()
	if n == 1 {
		l.lk.localWake(l.resource)
		return nil
	}
	return l.heldErr("release", n)
}

// handOff releases the lease by handing it to w, a waiter of this
// instance (lock_handoff.lua), and tells w the outcome. l.opMu is held.
func (l *lock) handOff(ctx context.Context, w *waiter, yield bool) error {
	lk := l.lk
	b := lk.b
	token := secret.LockToken()
	y := "0"
	if yield {
		y = "1"
	}
	key, fenceKey := b.keys.lockKeys(l.resource)
	start := time.Now()
	ch := b.keys.wakeChannel(key)
	n, err := b.batch.run(ctx, b.sc.lockHandoff, []string{key, fenceKey}, l.tokenArg, token, w.ttl.Milliseconds(),
		y, ch, b.idArg, b.handoffMs, b.sub.ownArg(ch)).Int64()
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

// giveUp ends a lease whose release could not be confirmed: it is no
// longer renewed, Done closes and Held no longer lists it, and the
// watchdog releases it in Redis (see orphan). l.opMu is held.
func (l *lock) giveUp() {
	l.mu.Lock()
	l.released = true
	l.finishLocked()
	l.lk.releaseLater(l)
	l.mu.Unlock()
}

func (l *lock) isReleased() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.released
}

// Extend sets the lease to end ttl from now, if it is still held.
func (l *lock) Extend(ctx context.Context, ttl time.Duration) error {
	if err := coord.ValidateTTL("lock TTL", ttl); err != nil {
		return err
	}
	l.opMu.Lock()
	defer l.opMu.Unlock()
	if l.isReleased() {
		return fmt.Errorf("coord/redis: extend lease on %q: released: %w", l.resource, coord.ErrNotHeld)
	}
	b := l.lk.b
	start := time.Now()
	n, err := b.batch.run(ctx, b.sc.lockExtend, l.keys, l.tokenArg, ttl.Milliseconds()).Int64()
	if err := b.fail(ctx, "extend", err); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n == 1 {
		l.setDeadlineLocked(start, ttl)
		return nil
	}
	l.finishLocked()
	return l.heldErr("extend", n)
}

// TTL returns the time left on the lease as Redis sees it.
func (l *lock) TTL(ctx context.Context) (time.Duration, error) {
	l.mu.Lock()
	released := l.released
	l.mu.Unlock()
	if released {
		return 0, fmt.Errorf("coord/redis: TTL of lease on %q: released: %w", l.resource, coord.ErrNotHeld)
	}
	b := l.lk.b
	res, err := b.sc.lockTTL.Run(ctx, b.client, l.keys, l.tokenArg).Int64Slice()
	if err := b.fail(ctx, "lease TTL", err); err != nil {
		return 0, err
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("%w: coord/redis: lease TTL: unexpected reply %v", coord.ErrUnavailable, res)
	}
	if res[0] != 1 {
		l.finish()
		return 0, l.heldErr("TTL of", res[0])
	}
	return time.Duration(max(res[1], 0)) * time.Millisecond, nil
}

// renew extends an auto-renewed lease for the watchdog. It returns when
// to renew next, and false when the lease is gone for good.
func (l *lock) renew(ctx context.Context) (time.Time, bool) {
	if !l.opMu.TryLock() {
		// A Release or Extend is under way: look again shortly.
		return time.Now().Add(10 * time.Millisecond), true
	}
	defer l.opMu.Unlock()
	l.mu.Lock()
	if l.ended || l.released {
		l.mu.Unlock()
		return time.Time{}, false
	}
	if !l.live() {
		// The local deadline passed without a renewal: the lease counts as
		// lost (another holder may have it), so it is not renewed again.
		l.finishLocked()
		l.mu.Unlock()
		return time.Time{}, false
	}
	ttl, deadline := l.ttl, l.deadline
	l.mu.Unlock()
	b := l.lk.b
	// A renewal is worth waiting for until the local deadline. l.mu is not
	// held meanwhile, so the deadline closes Done whatever the network does.
	rctx, cancel := context.WithTimeout(ctx, max(time.Until(deadline), 10*time.Millisecond))
	defer cancel()
	start := time.Now()
	n, err := b.sc.lockExtend.Run(rctx, b.client, l.keys, l.tokenArg, ttl.Milliseconds()).Int64()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended || l.released {
		if err == nil && n == 1 && !l.released {
			// Declared lost while the renewal was on its way, which then
			// succeeded: nobody uses the lease now, so let it go.
			l.lk.addOrphan(l.key, l.token, ttl)
		}
		return time.Time{}, false
	}
	if err != nil {
		if ctx.Err() != nil {
			return time.Time{}, false
		}
		_ = b.fail(rctx, "renew", err)
		b.opts.Logger.Warn("coord/redis: lease renewal failed; retrying", "resource_tag", secret.Redact(l.resource), "err", err)
		return time.Now().Add(max(ttl/10, 10*time.Millisecond)), true
	}
	b.setConnState(coord.Connected)
	if n != 1 {
		b.opts.Logger.Warn("coord/redis: auto-renewed lease lost", "resource_tag", secret.Redact(l.resource))
		l.finishLocked()
		return time.Time{}, false
	}
	l.setDeadlineLocked(start, ttl)
	return start.Add(ttl / 3), true
}
