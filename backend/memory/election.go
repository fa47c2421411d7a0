package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/secret"
)

// Elector is a [Backend]'s [coord.Elector]. A leadership is a lease on the
// election; campaigners queue first come, first served across the hub's
// nodes, and a resignation (or expiry, or force release) hands the
// leadership at once to the head of the queue. Observers hear of every
// change as it happens; an observer on a node whose subscription is cut
// (see [Backend.CutSubscription]) misses the changes meanwhile and reads
// the leader afresh once the node reconnects.
//
// An Elector is safe for concurrent use by multiple goroutines.
type Elector struct{ n *Backend }

var _ coord.Elector = (*Elector)(nil)

// leaderObservationQueue bounds the observations queued for one
// observer: past it, the queue is replaced by a fresh read (a gap).
const leaderObservationQueue = 64

// electRes is the hub's state of one election.
type electRes struct {
	h         *Hub
	name      string
	leader    *lock
	identity  string
	waiters   []*waiter // FIFO across all nodes
	observers []*observer
}

func (r *electRes) resName() string { return r.name }

// infoLocked describes the leader now (the zero LeaderInfo of the
// election when there is none).
func (r *electRes) infoLocked(now time.Time) coord.LeaderInfo {
	if r.leader == nil {
		return coord.LeaderInfo{Election: r.name}
	}
	return coord.LeaderInfo{
		Election:   r.name,
		Identity:   r.identity,
		InstanceID: r.leader.node.id,
		Term:       r.leader.fence,
		TTL:        r.leader.deadline.Sub(now),
	}
}

func (r *electRes) notifyLocked(now time.Time) {
	if len(r.observers) == 0 {
		return
	}
	info := r.infoLocked(now)
	for _, o := range r.observers {
		o.push(info)
	}
}

func (r *electRes) dropLocked(l *lock) {
	if r.leader == l {
		r.leader, r.identity = nil, ""
		if len(r.observers) > 0 {
			r.notifyLocked(time.Now())
		}
	}
}

func (r *electRes) expireLocked(h *Hub, now time.Time) {
	if l := r.leader; l != nil && !now.Before(l.deadline) {
		h.endLocked(l, lockLost)
		r.promoteLocked(h, now)
	}
}

func (r *electRes) promoteLocked(h *Hub, now time.Time) {
	if r.leader == nil && len(r.waiters) > 0 {
		w := r.waiters[0]
		r.waiters = slices.Delete(r.waiters, 0, 1)
		r.leader, r.identity = h.grantWaiterLocked(r, w, now), w.identity
		r.notifyLocked(now)
	}
	r.dropIdleLocked(h)
}

func (r *electRes) dropIdleLocked(h *Hub) {
	if r.leader == nil && len(r.waiters) == 0 && len(r.observers) == 0 && h.shapes.elect[r.name] == r {
		delete(h.shapes.elect, r.name)
	}
}

func (r *electRes) removeWaiter(w *waiter) {
	if i := slices.Index(r.waiters, w); i >= 0 {
		r.waiters = slices.Delete(r.waiters, i, i+1)
		r.dropIdleLocked(r.h)
	}
}

func (r *electRes) nextExpiry() time.Time {
	if r.leader != nil {
		return r.leader.deadline
	}
	return time.Time{}
}

func (r *electRes) notHeldLocked(*lock) error {
	if cur := r.h.shapes.elect[r.name]; cur != nil && cur.leader != nil {
		return fmt.Errorf("%w: coord/memory: %q has another leader", coord.ErrNotHeld, r.name)
	}
	return fmt.Errorf("%w: coord/memory: leadership of %q ended", coord.ErrExpired, r.name)
}

// electResLocked returns the live state of name, or nil when it has
// none; with create, it makes one.
func (h *Hub) electResLocked(name string, now time.Time, create bool) *electRes {
	r := h.shapes.elect[name]
	if r != nil {
		r.expireLocked(h, now)
		r = h.shapes.elect[name]
	}
	if r == nil && create {
		if h.shapes.elect == nil {
			h.shapes.elect = make(map[string]*electRes)
		}
		r = &electRes{h: h, name: name}
		h.shapes.elect[name] = r
	}
	return r
}

// leadership is a [coord.Leadership]: a lease on an election and the
// identity its leader proclaimed.
type leadership struct {
	*lock
	identity string
}

// Identity returns the identity the leader proclaimed.
func (l *leadership) Identity() string { return l.identity }

// String describes the leadership without its token.
func (l *leadership) String() string {
	return fmt.Sprintf("memory.Leadership{election: %q, term: %d, identity: %q, token: %s}", l.res.resName(), l.fence, l.identity, secret.Redact(l.token))
}

// Campaign waits until this node leads election, proclaiming identity,
// or until its retry budget or ctx runs out. It may return
// [coord.ErrNotAcquired] (joined with ctx.Err() when ctx ended the wait),
// [coord.ErrInvalid] or [coord.ErrClosed].
func (e *Elector) Campaign(ctx context.Context, election, identity string, opts ...coord.LockOption) (coord.Leadership, error) {
	n := e.n
	if err := driver.ValidateName("identity", identity); err != nil {
		return nil, err
	}
	o, err := n.leaseArgs(ctx, "Campaign", "election", election, opts)
	if err != nil {
		return nil, err
	}
	h := n.hub
	token := secret.LockToken()
	h.lmu.Lock()
	if n.closed.Load() {
		h.lmu.Unlock()
		return nil, errClosed("Campaign")
	}
	now := time.Now()
	r := h.electResLocked(election, now, true)
	if r.leader == nil && len(r.waiters) == 0 {
		// The lease and its leadership in one allocation.
		p := &struct {
			l  lock
			ld leadership
		}{}
		h.initLeaseLocked(&p.l, r, n, o, now, token)
		p.ld = leadership{lock: &p.l, identity: identity}
		r.leader, r.identity = &p.l, identity
		r.notifyLocked(now)
		h.lmu.Unlock()
		return &p.ld, nil
	}
	if o.Retries == 0 {
		h.lmu.Unlock()
		return nil, fmt.Errorf("%w: coord/memory: %q has a leader", coord.ErrNotAcquired, election)
	}
	w := &waiter{node: n, res: r, opts: o, wake: make(chan struct{}, 1), identity: identity}
	r.waiters = append(r.waiters, w)
	n.waiters[w] = struct{}{}
	delay := waitDelay(o, r, now)
	h.lmu.Unlock()
	l, err := h.wait(ctx, w, delay)
	if err != nil {
		return nil, err
	}
	return &leadership{lock: l, identity: identity}, nil
}

// Leader returns the leader of election; [coord.ErrNotFound] when there
// is none.
func (e *Elector) Leader(ctx context.Context, election string) (coord.LeaderInfo, error) {
	if err := driver.ValidateName("election", election); err != nil {
		return coord.LeaderInfo{}, err
	}
	if e.n.closed.Load() {
		return coord.LeaderInfo{}, errClosed("Leader")
	}
	h := e.n.hub
	h.lmu.Lock()
	defer h.lmu.Unlock()
	now := time.Now()
	r := h.electResLocked(election, now, false)
	if r == nil || r.leader == nil {
		return coord.LeaderInfo{}, fmt.Errorf("%w: coord/memory: %q has no leader", coord.ErrNotFound, election)
	}
	return r.infoLocked(now), nil
}

// ForceRelease ends the leadership of election, closes the leader's Done
// at once and hands the leadership to the next campaigner. It reports
// whether there was a leader.
func (e *Elector) ForceRelease(ctx context.Context, election string) (bool, error) {
	if err := driver.ValidateName("election", election); err != nil {
		return false, err
	}
	if e.n.closed.Load() {
		return false, errClosed("ForceRelease")
	}
	h := e.n.hub
	h.lmu.Lock()
	defer h.lmu.Unlock()
	now := time.Now()
	r := h.electResLocked(election, now, false)
	if r == nil || r.leader == nil {
		return false, nil
	}
	h.endLocked(r.leader, lockLost)
	r.promoteLocked(h, now)
	return true, nil
}

// Observe calls fn with the leader of election now and on every change,
// on a goroutine of its own, until ctx ends, the subscription is ended or
// the node closes. A panic in fn is recovered. Options are accepted and
// ignored: an observer's queue holds at most 64 changes, past which it is
// replaced by a fresh read.
func (e *Elector) Observe(ctx context.Context, election string, fn func(coord.LeaderInfo), opts ...coord.SubscribeOption) (coord.Subscription, error) {
	if err := driver.ValidateName("election", election); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: coord/memory: Observe needs a function", coord.ErrInvalid)
	}
	n := e.n
	h := n.hub
	o := &observer{node: n, fn: fn, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	h.lmu.Lock()
	if n.closed.Load() {
		h.lmu.Unlock()
		return nil, errClosed("Observe")
	}
	now := time.Now()
	r := h.electResLocked(election, now, true)
	o.res = r
	r.observers = append(r.observers, o)
	o.pending = append(o.pending, r.infoLocked(now))
	o.wake <- struct{}{}
	n.wg.Add(1) // under lmu: Close takes it before it waits for wg
	h.lmu.Unlock()
	go o.run(ctx)
	return o, nil
}

// observer is one Observe subscription.
type observer struct {
	node *Backend
	res  *electRes // guarded by hub.lmu
	fn   func(coord.LeaderInfo)
	wake chan struct{} // buffered 1
	stop chan struct{}
	once sync.Once
	done chan struct{}

	mu      sync.Mutex
	pending []coord.LeaderInfo
	missed  bool // a change came while the node was cut, or the queue overflowed
}

// push queues info for the observer, or notes a gap.
func (o *observer) push(info coord.LeaderInfo) {
	o.mu.Lock()
	if o.node.cut.Load() || len(o.pending) >= leaderObservationQueue {
		o.pending, o.missed = o.pending[:0], true
	} else {
		o.pending = append(o.pending, info)
	}
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *observer) run(ctx context.Context) {
	n := o.node
	defer n.wg.Done()
	defer close(o.done)
	defer o.leave()
	var retry *time.Timer
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case <-o.wake:
		case <-retryC:
			retryC = nil
		case <-ctx.Done():
			return
		case <-o.stop:
			return
		case <-n.stop:
			return
		}
		o.mu.Lock()
		batch, missed := o.pending, o.missed
		o.pending = nil
		if missed && n.cut.Load() {
			// Read afresh once the node has reconnected.
			o.mu.Unlock()
			if retry == nil {
				retry = time.NewTimer(n.reconnectDelay)
			} else {
				retry.Reset(n.reconnectDelay)
			}
			retryC = retry.C
			continue
		}
		o.missed = false
		o.mu.Unlock()
		if missed {
			h := n.hub
			h.lmu.Lock()
			batch = append(batch[:0], o.res.infoLocked(time.Now()))
			h.lmu.Unlock()
		}
		for _, info := range batch {
			select {
			case <-o.stop:
				return
			default:
			}
			o.call(info)
		}
	}
}

// call runs fn, recovering a panic: a panicking observer loses that one
// observation and goes on.
func (o *observer) call(info coord.LeaderInfo) {
	defer func() { _ = recover() }()
	o.fn(info)
}

// leave takes the observer out of its election.
func (o *observer) leave() {
	h := o.node.hub
	h.lmu.Lock()
	r := o.res
	if i := slices.Index(r.observers, o); i >= 0 {
		r.observers = slices.Delete(r.observers, i, i+1)
	}
	r.dropIdleLocked(h)
	h.lmu.Unlock()
}

// Unsubscribe ends the observation; fn is not called again once it
// returns, unless a call is running. It is idempotent.
func (o *observer) Unsubscribe() { o.once.Do(func() { close(o.stop) }) }

// Done returns a channel closed when the observation has ended and fn is
// no longer running.
func (o *observer) Done() <-chan struct{} { return o.done }
