package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/secret"
)

// Elector is the Backend's [coord.Elector]. A leadership is a lease in
// its own namespace: a hash holding the lease value ("<secret>.<instance
// ID>\n<identity>") and the term, with PX expiry, beside the election's
// fence counter, whose draws are the terms (take() in lua/lock_lib.lua),
// in one hash slot. Taking, resigning and a forced release publish on
// the election's changes channel; campaigners wait on it as the Locker's
// waiters do on a wake channel. [Elector.Leader] reads value, term and
// PTTL in one script. [Elector.Observe] re-reads the leader on every
// change message, after any gap in delivery on the subscriber
// connection, and when the TTL it last read has run out (a silent expiry
// publishes nothing).
//
// Leaderships are full leases of the Backend's lease engine (see
// [Locker]); with [Options].LockReplicas, a Campaign wins only once that
// many replicas acknowledged the leadership and its term (a leadership
// they did not acknowledge is resigned at once, which observers may see
// as a short term). An Elector is safe for concurrent use by multiple
// goroutines.
type Elector struct {
	lk     *Locker
	leader *leaseKind
}

var _ coord.Elector = (*Elector)(nil)

func newElector(lk *Locker) *Elector {
	b := lk.b
	e := &Elector{lk: lk}
	e.leader = &leaseKind{
		name: "leadership", release: b.sc.electRelease, extend: b.sc.electExtend, ttl: b.sc.electTTL,
		woken: func(election string) {
			_, ch := b.keys.electKeys(election)
			lk.leases.wake(ch, wakeLeaderLeft)
		},
	}
	return e
}

// As forwards to [Backend.As].
func (e *Elector) As(target any) bool { return e.lk.b.As(target) }

// leadership is a [coord.Leadership]: a lease and the identity it
// proclaims.
type leadership struct {
	*lock
	identity string
}

// Identity returns the identity this leader proclaimed.
func (l *leadership) Identity() string { return l.identity }

// Campaign waits until this instance leads election. May return
// [coord.ErrNotAcquired] (joined with ctx.Err() when ctx ended the wait),
// [coord.ErrInvalid], [coord.ErrClosed] or [coord.ErrUnavailable].
func (e *Elector) Campaign(ctx context.Context, election, identity string, opts ...coord.LockOption) (coord.Leadership, error) {
	o, err := e.lk.leaseOptions("election", election, opts)
	if err != nil {
		return nil, err
	}
	if err := driver.ValidateName("identity", identity); err != nil {
		return nil, err
	}
	b := e.lk.b
	keys, ch := b.keys.electKeys(election)
	l, err := e.lk.acquireLease(ctx, &leaseTry{
		kind: e.leader, resource: election, script: b.sc.electCampaign, keys: keys,
		leaseKeys: keys[0:1], relArgs: []any{ch, e.lk.leases.payload(wakeLeaderLeft)},
		suffix: "\n" + identity, extra: []any{ch, e.lk.leases.payload(wakeLeaderNew) + "\n" + identity},
		channel: ch, role: roleLeader,
	}, o)
	if err != nil {
		return nil, err
	}
	return &leadership{lock: l.(*lock), identity: identity}, nil
}

// Leader returns the current leader of election; [coord.ErrNotFound]
// when there is none.
func (e *Elector) Leader(ctx context.Context, election string) (coord.LeaderInfo, error) {
	b := e.lk.b
	if err := b.checkOpen(); err != nil {
		return coord.LeaderInfo{}, err
	}
	if err := driver.ValidateName("election", election); err != nil {
		return coord.LeaderInfo{}, err
	}
	return e.read(ctx, election)
}

func (e *Elector) read(ctx context.Context, election string) (coord.LeaderInfo, error) {
	b := e.lk.b
	keys, _ := b.keys.electKeys(election)
	res, err := b.sc.electLeader.Run(ctx, b.client, keys[0:1]).Slice()
	if err := b.fail(ctx, "leader", err); err != nil {
		return coord.LeaderInfo{}, err
	}
	return parseLeader(election, res)
}

// parseLeader validates the reply of elect_leader.lua.
func parseLeader(election string, res []any) (coord.LeaderInfo, error) {
	none := fmt.Errorf("%w: coord/redis: election %q has no leader", coord.ErrNotFound, election)
	bad := func(what string) (coord.LeaderInfo, error) {
		return coord.LeaderInfo{}, fmt.Errorf("%w: coord/redis: election %q: %s", coord.ErrInvalid, election, what)
	}
	if len(res) != 3 {
		return bad("malformed reply")
	}
	v, ok := res[0].(string)
	if !ok {
		return coord.LeaderInfo{}, none
	}
	ts, _ := res[1].(string)
	term, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || term < 1 {
		return bad("term is not a positive integer")
	}
	pttl, ok := res[2].(int64)
	if !ok {
		return bad("malformed PTTL")
	}
	if pttl == -2 {
		return coord.LeaderInfo{}, none
	}
	_, rest, ok := strings.Cut(v, ".")
	if !ok {
		return bad("malformed leader value")
	}
	id, identity, ok := strings.Cut(rest, "\n")
	if !ok || id == "" {
		return bad("malformed leader value")
	}
	li := coord.LeaderInfo{Election: election, Identity: identity, InstanceID: id, Term: term, TTL: -1}
	if pttl >= 0 {
		li.TTL = time.Duration(pttl) * time.Millisecond
	}
	return li, nil
}

// ForceRelease ends the current leadership of election, whoever holds
// it, and wakes the campaigners; it reports whether there was a leader.
// The deposed leader learns of it at its next Extend, Release or renewal.
func (e *Elector) ForceRelease(ctx context.Context, election string) (bool, error) {
	b := e.lk.b
	if err := b.checkOpen(); err != nil {
		return false, err
	}
	if err := driver.ValidateName("election", election); err != nil {
		return false, err
	}
	keys, ch := b.keys.electKeys(election)
	n, err := b.sc.electForce.Run(ctx, b.client, keys[0:1], ch, e.lk.leases.payload(wakeLeaderLeft)).Int64()
	if err := b.fail(ctx, "force release", err); err != nil {
		return false, err
	}
	if n == 1 {
		e.lk.leases.wake(ch, wakeLeaderLeft)
	}
	return n == 1, nil
}

// observer is one Observe subscription.
type observer struct {
	kick chan struct{} // buffered 1: re-read the leader

	mu    sync.Mutex
	taken []coord.LeaderInfo // leaderships announced on the channel, not yet delivered

	stop chan struct{} // closed by Unsubscribe
	once sync.Once

	election string
	done     chan struct{} // closed when the goroutine has returned
}

// maxTaken bounds the announcements an observer keeps: past it, the
// oldest go (the re-read that follows still delivers the latest state).
const maxTaken = 64

// announce records a leadership announced on the changes channel (see
// lua/elect_campaign.lua): payload after its first byte is "<instance
// ID>\n<identity>\n<term>". Malformed payloads are ignored: the re-read
// that follows is the truth.
func (o *observer) announce(election, payload string) {
	id, rest, ok1 := strings.Cut(payload, "\n")
	identity, ts, ok2 := strings.Cut(rest, "\n")
	term, err := strconv.ParseInt(ts, 10, 64)
	if !ok1 || !ok2 || err != nil || id == "" || term < 1 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.taken) >= maxTaken {
		o.taken = o.taken[1:]
	}
	o.taken = append(o.taken, coord.LeaderInfo{Election: election, Identity: identity, InstanceID: id, Term: term, TTL: -1})
}

func (o *observer) takeAnnounced() []coord.LeaderInfo {
	o.mu.Lock()
	defer o.mu.Unlock()
	t := o.taken
	o.taken = nil
	return t
}

// Unsubscribe ends the subscription.
func (o *observer) Unsubscribe() { o.once.Do(func() { close(o.stop) }) }

// Done is closed once the subscription ended and fn no longer runs.
func (o *observer) Done() <-chan struct{} { return o.done }

// Observe calls fn, on a goroutine of the subscription, with the leader
// of election now and after every change of leader (a zero InstanceID
// when there is none). It re-reads the leader on every message of the
// election's changes channel, after any gap in delivery, and when the TTL
// it last read runs out; fn is called only when the leader (instance,
// identity, term) differs from the last one it was given. The
// subscription ends when ctx ends, at Unsubscribe, or when the Backend
// closes.
func (e *Elector) Observe(ctx context.Context, election string, fn func(coord.LeaderInfo), _ ...coord.SubscribeOption) (coord.Subscription, error) {
	b := e.lk.b
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	if err := driver.ValidateName("election", election); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: coord/redis: observe: nil func", coord.ErrInvalid)
	}
	lw := e.lk.leases
	o := &observer{election: election, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	lw.mu.Lock()
	if lw.stopped {
		lw.mu.Unlock()
		return nil, b.checkOpen()
	}
	lw.obs.Add(1)
	lw.mu.Unlock()
	_, ch := b.keys.electKeys(election)
	wc := lw.join(ctx, ch, nil, o, time.Second)
	go func() {
		defer lw.obs.Done()
		defer close(o.done)
		defer lw.leave(ch, wc, nil, o)
		e.observe(ctx, election, o, fn)
	}()
	return o, nil
}

// observe is the loop of one observer.
func (e *Elector) observe(ctx context.Context, election string, o *observer, fn func(coord.LeaderInfo)) {
	b := e.lk.b
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var last coord.LeaderInfo
	var maxTerm int64 // the highest term delivered
	first := true
	deliver := func(li coord.LeaderInfo) bool {
		if !first && li.InstanceID == last.InstanceID && li.Term == last.Term && li.Identity == last.Identity {
			return true
		}
		select {
		case <-o.stop:
			return false
		default:
		}
		first = false
		last = li
		maxTerm = max(maxTerm, li.Term)
		e.call(fn, li)
		return true
	}
	backoff := 10 * time.Millisecond
	for {
		// Leaderships announced since the last read, even those already
		// over, in term order; an older term than one delivered is stale.
		for _, li := range o.takeAnnounced() {
			if !first && li.Term > maxTerm && !deliver(li) {
				return
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		li, err := e.read(rctx, election)
		cancel()
		next := time.Hour
		switch {
		case err == nil || errors.Is(err, coord.ErrNotFound):
			backoff = 10 * time.Millisecond
			if err != nil {
				li = coord.LeaderInfo{Election: election}
			} else if li.TTL >= 0 {
				next = li.TTL + time.Millisecond // a silent expiry publishes nothing
			}
			if li.InstanceID != "" && li.Term < maxTerm {
				break // a read older than an announcement delivered (a lagging node)
			}
			if !deliver(li) {
				return
			}
		case errors.Is(err, coord.ErrClosed) || ctx.Err() != nil:
			return
		default:
			next = backoff
			backoff = min(2*backoff, time.Second)
		}
		timer.Reset(next)
		select {
		case <-o.kick:
		case <-timer.C:
		case <-o.stop:
			return
		case <-ctx.Done():
			return
		case <-b.closing:
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// call runs an Observe handler; a panic in it is recovered and logged, as
// the other subscriptions' are, and the subscription goes on.
func (e *Elector) call(fn func(coord.LeaderInfo), li coord.LeaderInfo) {
	defer func() {
		if r := recover(); r != nil {
			e.lk.b.opts.Logger.Error("coord/redis: election observer panicked", "election_tag", secret.Redact(li.Election), "panic", fmt.Sprint(r))
		}
	}()
	fn(li)
}

// shutdown ends every observer and waits for them.
func (lw *leaseWaits) shutdown() {
	lw.mu.Lock()
	lw.stopped = true
	var obs []*observer
	for _, wc := range lw.chans {
		for o := range wc.observers {
			obs = append(obs, o)
		}
	}
	lw.mu.Unlock()
	for _, o := range obs {
		o.Unsubscribe()
	}
	lw.obs.Wait()
}
