package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
)

// Wake payloads of the read-write, semaphore and election channels: one
// byte saying what happened, then the publishing instance's ID.
const (
	wakeWriterLeft byte = 'w' // a writer left, a waiting writer withdrew, or a force release: readers and one writer
	wakeReaderLeft byte = 'r' // the last reader left: one writer
	wakePermitFree byte = 'p' // a permit was freed: one permit waiter
	wakeAll        byte = 'f' // every permit ended: every waiter
	wakeLeaderLeft byte = 'x' // a leadership ended (resigned or forced): one campaigner
	wakeLeaderNew  byte = 't' // a leadership was taken: observers only
)

// Waiter roles.
const (
	roleRead byte = iota + 1
	roleWrite
	rolePermit
	roleLeader
)

// leaseWaits keeps this instance's waiters for read-write leases, permits
// and leaderships, and its election observers, by wake channel, each
// channel behind one subscription on the Backend's subscriber
// connection. It is safe for concurrent use.
type leaseWaits struct {
	b *Backend

	mu       sync.Mutex
	chans    map[string]*waitChan
	payloads [128]string // the wake payloads of this instance, by what (immutable)
	stopped  bool
	obs      sync.WaitGroup // observer goroutines
}

// waitChan is one wake channel's subscription and its local waiters.
type waitChan struct {
	refs       int
	subscribed chan struct{} // closed once the subscription was requested
	ready      <-chan struct{}
	err        error
	waiters    []*leaseWaiter // FIFO
	observers  map[*observer]struct{}
	streak     int // local permit handoffs since the last published release
	// missed counts the permit wake-ups that found every permit waiter
	// woken already (or none), up to the number of waiters: a waiter
	// whose try takes a permit passes one of them on (wakeNext), as there
	// may be room for more.
	missed int
}

// leaseWaiter is one waiting RLock, Lock, Acquire or Campaign.
type leaseWaiter struct {
	role  byte
	wake  chan struct{}   // buffered 1
	ttl   time.Duration   // the TTL asked for, for a local handoff
	grant chan leaseGrant // buffered 1: the outcome of a local handoff

	// Guarded by leaseWaits.mu.
	pending bool // a local handoff to this waiter is under way
	trying  bool // the waiter is trying for itself: no handoff to it meanwhile
	leaving bool // the wait ended: no local handoff to it any more
	// woken: a wake-up was sent to the waiter and it has not tried since:
	// it is on its way to take a freed permit, so no handoff goes to it
	// (it would take the handoff instead, and the freed permit would stay
	// free until another wake-up).
	woken bool
}

// leaseGrant is the outcome of a local handoff of a permit.
type leaseGrant struct {
	ok    bool
	token string
	fence int64
	start time.Time // taken before the handoff was sent
}

// maxLocalHandoffs is how many permits in a row a resource's releases on
// this instance hand to local waiters before one is released as usual
// (published), so that waiters of other instances get their turn.
const maxLocalHandoffs = 16

// handoffTarget returns the local waiter of ch a release should hand its
// permit to (marked pending), or nil.
func (lw *leaseWaits) handoffTarget(ch string) *leaseWaiter {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	wc := lw.chans[ch]
	if wc == nil || lw.stopped {
		return nil
	}
	for _, w := range wc.waiters {
		if w.role != rolePermit || w.pending || w.trying || w.leaving || w.woken || len(w.grant) > 0 {
			continue
		}
		wc.streak++
		if wc.streak > maxLocalHandoffs {
			wc.streak = 0
			return nil
		}
		w.pending = true
		return w
	}
	return nil
}

// startTry reports whether a handoff to w is under way or its outcome
// waits in w.grant; when neither, w is marked trying until endTry, so
// that no handoff reaches it while its own try may take a lease (a
// permit handed over then would only be given back). Either way, the
// wake-up w got, if any, is used.
func (lw *leaseWaits) startTry(w *leaseWaiter) bool {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	w.woken = false
	if w.pending || len(w.grant) > 0 {
		return true
	}
	w.trying = true
	return false
}

// endTry ends what startTry began.
func (lw *leaseWaits) endTry(w *leaseWaiter) {
	lw.mu.Lock()
	w.trying = false
	lw.mu.Unlock()
}

// granted delivers the outcome of a handoff to w. A waiter whose wait
// ended meanwhile takes it as it leaves, and gives back a permit it does
// not return.
func (lw *leaseWaits) granted(w *leaseWaiter, g leaseGrant) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	w.pending = false
	if g.ok {
		w.leaving = true // a granted permit ends the wait: no second handoff to w
	}
	w.grant <- g // never blocks: one handoff at a time, and w takes each
}

func newLeaseWaits(b *Backend) *leaseWaits {
	lw := &leaseWaits{b: b, chans: map[string]*waitChan{}}
	for _, c := range []byte{wakeWriterLeft, wakeReaderLeft, wakePermitFree, wakeAll, wakeLeaderLeft, wakeLeaderNew} {
		lw.payloads[c] = string(c) + b.opts.InstanceID
	}
	return lw
}

// join adds a reference to the subscription of ch (subscribing when it is
// the first) and, when w is not nil, w to its waiters; it returns once the
// subscription is confirmed or a RetryDelay-like bound passed.
func (lw *leaseWaits) join(ctx context.Context, ch string, w *leaseWaiter, obs *observer, bound time.Duration) *waitChan {
	lw.mu.Lock()
	wc := lw.chans[ch]
	fresh := wc == nil
	if fresh {
		wc = &waitChan{subscribed: make(chan struct{}), observers: map[*observer]struct{}{}}
		lw.chans[ch] = wc
	}
	wc.refs++
	if w != nil {
		wc.waiters = append(wc.waiters, w)
	}
	if obs != nil {
		wc.observers[obs] = struct{}{}
	}
	lw.mu.Unlock()
	if fresh {
		wc.ready, wc.err = lw.b.sub.acquire(ctx, ch, kindWake)
		close(wc.subscribed)
	}
	<-wc.subscribed
	if wc.err == nil {
		lw.b.waitReady(ctx, wc.ready, bound)
	}
	return wc
}

// leave undoes join.
func (lw *leaseWaits) leave(ch string, wc *waitChan, w *leaseWaiter, obs *observer) {
	lw.mu.Lock()
	if w != nil {
		if i := slices.Index(wc.waiters, w); i >= 0 {
			wc.waiters = slices.Delete(wc.waiters, i, i+1)
		}
	}
	if obs != nil {
		delete(wc.observers, obs)
	}
	wc.refs--
	last := wc.refs == 0
	if last && lw.chans[ch] == wc {
		delete(lw.chans, ch)
	}
	lw.mu.Unlock()
	if last && wc.err == nil {
		lw.b.sub.release(ch)
	}
}

// hasWaiters reports whether ch has a local waiter of role.
func (lw *leaseWaits) hasWaiters(ch string, role byte) bool {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if wc := lw.chans[ch]; wc != nil {
		for _, w := range wc.waiters {
			// A waiter that a handoff is reaching, or whose wait ended,
			// takes no free lease: a newcomer does not queue behind it.
			if w.role == role && !w.pending && !w.leaving {
				return true
			}
		}
	}
	return false
}

// wake wakes the local waiters of ch that what calls for.
func (lw *leaseWaits) wake(ch string, what byte) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	wc := lw.chans[ch]
	if wc == nil {
		return
	}
	lw.wakeLocked(wc, what)
}

func (lw *leaseWaits) wakeLocked(wc *waitChan, what byte) {
	one := func(role byte) {
		for _, w := range wc.waiters {
			// A waiter that a handoff is reaching, or whose wait ended,
			// would not use the wake-up, and a permit waiter woken
			// already takes one freed permit at most: it goes to the
			// next.
			if w.role == role && !w.pending && !w.leaving && (role != rolePermit || !w.woken) {
				w.woken = true
				poke(w.wake)
				return
			}
		}
		if role == rolePermit && wc.missed < len(wc.waiters) {
			wc.missed++
		}
	}
	switch what {
	case wakeWriterLeft:
		for _, w := range wc.waiters {
			if w.role == roleRead {
				poke(w.wake)
			}
		}
		one(roleWrite)
	case wakeReaderLeft:
		one(roleWrite)
	case wakePermitFree:
		one(rolePermit)
	case wakeLeaderLeft:
		one(roleLeader)
	case wakeAll:
		for _, w := range wc.waiters {
			poke(w.wake)
		}
	}
}

// wakeNext ends the wait of w, a permit waiter whose try took a permit
// or whose wait ended without one (no handoff reaches it any more), and
// passes a wake-up on to another local permit waiter: when w got a
// wake-up it did not use (one that came during its try may be for
// another permit), or, when w took a permit, when a wake-up found no
// waiter to wake before (there may be room for more).
func (lw *leaseWaits) wakeNext(ch string, w *leaseWaiter, took bool) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	w.leaving = true
	wc := lw.chans[ch]
	if w.role != rolePermit || wc == nil {
		return
	}
	switch {
	case w.woken:
		w.woken = false
	case took && wc.missed > 0:
		wc.missed--
	default:
		return
	}
	lw.wakeLocked(wc, wakePermitFree)
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// message handles a message on a channel of this keyspace that is not a
// Locker wake channel. It reports whether the channel is one of ours.
func (lw *leaseWaits) message(ch, payload string) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	wc := lw.chans[ch]
	if wc == nil || payload == "" {
		return
	}
	for o := range wc.observers {
		if payload[0] == wakeLeaderNew {
			o.announce(o.election, payload[1:])
		}
		poke(o.kick)
	}
	if payload[0] == wakeLeaderNew {
		return // no waiter to wake
	}
	if payload[1:] == lw.b.opts.InstanceID {
		return // this instance woke its own waiters when it published
	}
	lw.wakeLocked(wc, payload[0])
}

// gap wakes every waiter and every observer: a message may have been
// missed.
func (lw *leaseWaits) gap() {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	for _, wc := range lw.chans {
		for _, w := range wc.waiters {
			poke(w.wake)
		}
		for o := range wc.observers {
			poke(o.kick)
		}
	}
}

// payload returns the wake payload of what from this instance.
func (lw *leaseWaits) payload(what byte) string {
	if p := lw.payloads[what]; p != "" {
		return p
	}
	return string(what) + lw.b.opts.InstanceID
}

// leaseTry describes one kind of acquire: its script, its keys and what
// the lease it makes is.
type leaseTry struct {
	kind      *leaseKind
	resource  string
	script    *goredis.Script
	keys      []string // the acquire script's keys
	leaseKeys []string // the lease's keys, for release, extend and TTL
	relArgs   []any    // the release script's arguments after the token
	suffix    string   // appended to the lease value (a leader's identity)
	extra     []any    // the acquire script's arguments after the value and the TTL
	channel   string   // the wake channel
	role      byte
	// cancel, when set, runs (best effort) when a wait ends without the
	// lease: a writer withdraws its intent.
	cancel func(token string)
}

// tryOnce runs the acquire script once with a new token. It returns the
// lease, or a wait hint (negative when unknown).
func (lk *Locker) tryOnce(ctx context.Context, t *leaseTry, token string, o coord.LockOptions) (*lock, time.Duration, error) {
	b := lk.b
	start := time.Now()
	// The script runs to completion even when ctx ends meanwhile, so that
	// its outcome is known and a lease never stays behind unowned.
	rctx := ctx
	if ctx.Done() != nil {
		rctx = context.WithoutCancel(ctx)
	}
	args := make([]any, 0, 2+len(t.extra))
	args = append(args, token, o.TTL.Milliseconds())
	args = append(args, t.extra...)
	res, acked, err := b.runAcquire(rctx, t.script, t.keys, args...)
	if err != nil {
		if !isOOM(err) {
			lk.addLeaseOrphan(t.kind, t.leaseKeys, t.relArgs, token, o.TTL)
		}
		return nil, 0, b.fail(ctx, "acquire "+t.kind.name, err)
	}
	b.setConnState(coord.Connected)
	if res < 0 {
		return nil, time.Duration(-res-2) * time.Millisecond, nil
	}
	l := &lock{
		lk: lk, kind: t.kind, relArgs: t.relArgs, resource: t.resource, key: t.leaseKeys[0],
		token: token, fence: res, keys: t.leaseKeys, tokenArg: token,
		ttl: o.TTL, autoRenew: o.AutoRenew, done: make(chan struct{}),
	}
	if err := b.replicaShort(t.kind.name, t.resource, acked); err != nil {
		lk.releaseLease(l)
		t.kind.woken(t.resource)
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		lk.releaseLease(l)
		return nil, 0, errors.Join(notAcquiredKind(t.kind, t.resource), err)
	}
	if !lk.register(l, start) {
		lk.releaseLease(l)
		return nil, 0, errors.Join(notAcquiredKind(t.kind, t.resource), b.checkOpen())
	}
	return l, 0, nil
}

// releaseLease releases a lease that was never handed out; when that
// fails, the watchdog keeps trying.
func (lk *Locker) releaseLease(l *lock) {
	b := lk.b
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.kind.release.Run(ctx, b.client, l.keys, append([]any{l.token}, l.relArgs...)...).Err(); err != nil {
		lk.addLeaseOrphan(l.kind, l.keys, l.relArgs, l.token, l.ttl)
	}
}

func notAcquiredKind(kind *leaseKind, resource string) error {
	return fmt.Errorf("%w: coord/redis: no %s on %q", coord.ErrNotAcquired, kind.name, resource)
}

// acquireLease takes a lease of the kind t describes, waiting as
// [Locker.Acquire] does: between tries it sleeps until a wake-up on the
// resource's channel, the wait hint the script returned (a holder's
// expiry), or RetryDelay, whichever is first, for at most the retries o
// allows or until ctx ends. A permit waiter that finds other local permit
// waiters queues behind them (FIFO on this instance), so a releaser
// coming straight back cannot overtake them; each permit taken by a woken
// waiter passes the wake-up on to the next.
func (lk *Locker) acquireLease(ctx context.Context, t *leaseTry, o coord.LockOptions) (coord.Lock, error) {
	b, lw := lk.b, lk.leases
	if err := ctx.Err(); err != nil {
		return nil, errors.Join(notAcquiredKind(t.kind, t.resource), err)
	}
	token := b.newToken() + t.suffix // one value for the whole wait: a writer's intent is renewed under it
	giveUp := func() {
		if t.cancel != nil {
			t.cancel(token)
		}
	}
	queued := t.role == rolePermit && lw.hasWaiters(t.channel, t.role)
	tries := 0
	hint := time.Duration(-1)
	if !queued || o.Retries == 0 {
		l, h, err := lk.tryOnce(ctx, t, token, o)
		if l != nil {
			return l, nil
		}
		if err != nil {
			giveUp()
			return nil, lk.closedOr(t, err)
		}
		tries, hint = 1, h
		if o.Retries == 0 {
			giveUp()
			return nil, notAcquiredKind(t.kind, t.resource)
		}
	}
	w := &leaseWaiter{role: t.role, wake: make(chan struct{}, 1), ttl: o.TTL, grant: make(chan leaseGrant, 1)}
	wc := lw.join(ctx, t.channel, w, nil, max(o.RetryDelay, time.Millisecond))
	l, err := lk.waitLease(ctx, t, o, w, token, tries, hint, giveUp)
	// No handoff to w from now on; one may be under way: take its outcome,
	// and give back a permit handed over that the wait does not return.
	lw.mu.Lock()
	w.leaving = true
	pending := w.pending
	lw.mu.Unlock()
	if l == nil {
		lw.wakeNext(t.channel, w, false) // a wake-up w did not use goes to another waiter
	}
	var late leaseGrant
	if pending {
		late = <-w.grant
	} else {
		select {
		case late = <-w.grant:
		default:
		}
	}
	lw.leave(t.channel, wc, w, nil)
	if late.ok {
		lk.releaseLease(lk.grantLock(t, late, o))
		t.kind.woken(t.resource)
	}
	return l, err
}

// grantLock returns the (unregistered) lease a handoff granted.
func (lk *Locker) grantLock(t *leaseTry, g leaseGrant, o coord.LockOptions) *lock {
	return &lock{
		lk: lk, kind: t.kind, relArgs: t.relArgs, resource: t.resource, key: t.leaseKeys[0],
		token: g.token, fence: g.fence, keys: t.leaseKeys, tokenArg: g.token,
		ttl: o.TTL, autoRenew: o.AutoRenew, done: make(chan struct{}),
	}
}

// waitLease is the waiting loop of acquireLease for w.
func (lk *Locker) waitLease(ctx context.Context, t *leaseTry, o coord.LockOptions, w *leaseWaiter, token string, tries int, hint time.Duration, giveUp func()) (coord.Lock, error) {
	b, lw := lk.b, lk.leases
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// After a refused try, try again at once now that the subscription is
	// in place: a release between that try and the subscription was not
	// heard.
	immediate := tries > 0
	for {
		if !immediate {
			d := o.RetryDelay
			if hint >= 0 && hint+time.Millisecond < d {
				d = hint + time.Millisecond
			}
			timer.Reset(max(d, minWait))
			select {
			case g := <-w.grant:
				if g.ok {
					giveUp()
					return lk.granted(ctx, t, g, o)
				}
			case <-w.wake:
			case <-timer.C:
			case <-ctx.Done():
				giveUp()
				return nil, errors.Join(notAcquiredKind(t.kind, t.resource), ctx.Err())
			case <-b.closing:
				giveUp()
				return nil, errors.Join(notAcquiredKind(t.kind, t.resource), b.checkOpen())
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		select {
		case <-w.wake: // drop a stale wake-up: the try below sees the state
		default:
		}
		for lw.startTry(w) {
			// A permit is being handed to w: take that rather than try.
			if g := <-w.grant; g.ok {
				giveUp()
				return lk.granted(ctx, t, g, o)
			}
		}
		l, h, err := lk.tryOnce(ctx, t, token, o)
		if l != nil {
			// w stays marked trying, out of the handoffs' reach, until it
			// leaves.
			lw.wakeNext(t.channel, w, true)
			return l, nil
		}
		lw.endTry(w)
		if err != nil {
			giveUp()
			return nil, lk.closedOr(t, err)
		}
		hint = h
		if !immediate {
			tries++
		}
		immediate = false
		if o.Retries >= 0 && tries > o.Retries {
			giveUp()
			return nil, notAcquiredKind(t.kind, t.resource)
		}
	}
}

// granted registers a permit handed over to a waiter and returns it.
func (lk *Locker) granted(ctx context.Context, t *leaseTry, g leaseGrant, o coord.LockOptions) (coord.Lock, error) {
	l := lk.grantLock(t, g, o)
	if err := ctx.Err(); err != nil {
		lk.releaseLease(l)
		t.kind.woken(t.resource)
		return nil, errors.Join(notAcquiredKind(t.kind, t.resource), err)
	}
	if !lk.register(l, g.start) {
		lk.releaseLease(l)
		return nil, errors.Join(notAcquiredKind(t.kind, t.resource), lk.b.checkOpen())
	}
	return l, nil
}

// closedOr returns err, or, when the Backend closed meanwhile (a try that
// failed because Close or its caller closed the client), the error of a
// wait ended by Close.
func (lk *Locker) closedOr(t *leaseTry, err error) error {
	if cerr := lk.b.checkOpen(); cerr != nil {
		return errors.Join(notAcquiredKind(t.kind, t.resource), cerr)
	}
	return err
}
