package memory

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/subq"
)

// HubOptions configure a [Hub]. A nil *HubOptions, or a zero or negative
// field, means the default.
type HubOptions struct {
	// MaxPayload is the limit, in bytes, on an encoded event payload, an
	// invalidation's metadata and a session's encoded data.
	// Default: [driver.DefaultMaxPayload].
	MaxPayload int
	// SessionDefaults holds the session defaults (idle TTL, absolute
	// lifetime) of Create without [coord.WithIdleTTL] or
	// [coord.WithLifetime]; a negative duration counts as zero.
	// Default: idle TTL [coord.DefaultSessionTTL], no lifetime.
	SessionDefaults coord.SessionOptions
}

// Hub is the state several [Backend]s share, as several processes share one
// Redis server: leases and their fencing counters, sessions, and the
// fan-out of invalidations and events. A Hub has no goroutine of its own
// and needs no closing; each Backend is closed by itself.
//
// A Hub is safe for concurrent use by multiple goroutines.
type Hub struct {
	maxPayload int
	sessDef    coord.SessionOptions

	// closedCh is a closed channel, the Done of a Lock that ended before
	// anyone asked for its Done.
	closedCh chan struct{}

	// lmu guards every lease: the resources, each Lock's state, each
	// node's held set, waiters and timer heap.
	lmu       sync.Mutex
	resources map[string]*resource // names with a holder or waiters
	fence     int64                // the last fence handed out, on any resource
	shapes    shapes               // read-write locks, semaphores, elections (rwlock.go)

	sessions sessionStore
	jobs     jobTable // periodic jobs' records (jobs.go)
	rates    rateStore
	streams  streamStore

	// nmu guards changes of nodes; readers load the snapshot.
	nmu   sync.Mutex
	nodes atomic.Pointer[[]*Backend]
}

// NewHub returns an empty Hub. opts may be nil.
func NewHub(opts *HubOptions) *Hub {
	h := &Hub{
		maxPayload: driver.DefaultMaxPayload,
		closedCh:   make(chan struct{}),
		resources:  make(map[string]*resource),
	}
	close(h.closedCh)
	if opts != nil {
		if opts.MaxPayload > 0 {
			h.maxPayload = opts.MaxPayload
		}
		h.sessDef.IdleTTL = max(opts.SessionDefaults.IdleTTL, 0)
		h.sessDef.Lifetime = max(opts.SessionDefaults.Lifetime, 0)
	}
	h.sessions.init()
	h.nodes.Store(&[]*Backend{})
	return h
}

// Options configure a [Backend]. A nil *Options, or a zero field,
// means the default.
type Options struct {
	// InstanceID is the node's instance ID. Default: "mem-" and 16 random
	// hex digits.
	InstanceID string
	// LockDefaults are applied before the options of each Acquire; an
	// invalid one makes every Acquire fail with [coord.ErrInvalid].
	// Default: none (coord's defaults: TTL 10s, 3 retries 100ms apart).
	LockDefaults []coord.LockOption
	// QueueSize is the queue length of a subscription made without
	// [coord.WithQueueSize], for invalidations and events alike. Default:
	// [coord.DefaultInvalidationQueueSize] for invalidations,
	// [coord.DefaultQueueSize] for events.
	QueueSize int
	// ReconnectDelay is how long a subscription cut by
	// [Backend.CutSubscription] stays cut before the node reconnects.
	// Default: 10ms.
	ReconnectDelay time.Duration
	// QueueBytes bounds the bytes of messages queued for the node's
	// subscriptions, all together (key, metadata or payload, and a small
	// per-message overhead). A message that would pass it is dropped as
	// on a full queue: an invalidation subscriber gets a PurgeAll
	// [coord.ReasonOverflow], an event is counted in Stats().Dropped.
	// Negative means no bound. Default: [coord.DefaultQueueBytes] (64 MiB).
	QueueBytes int64
}

// Backend is one instance on a [Hub]: it implements [coord.Backend] with its
// own instance ID, held leases, subscriptions and counters. Each Backend runs
// one goroutine for lease renewals and expiry (whatever the number of
// leases) and one per subscription; [Backend.Close] stops and waits for all
// of them.
//
// A Backend is safe for concurrent use by multiple goroutines.
type Backend struct {
	hub            *Hub
	id             string
	queueSize      int
	lockDefaults   []coord.LockOption // Options.LockDefaults, capped so append copies
	reconnectDelay time.Duration
	budget         *subq.Budget // bytes queued for the subscriptions

	locker   Locker
	sessions Sessions
	inv      Invalidator
	events   Events

	closed    atomic.Bool
	closeDone chan struct{} // closed when the first Close has finished
	stop      chan struct{} // closed by Close: ends the timer goroutine
	wg        sync.WaitGroup

	// Guarded by hub.lmu. timers holds exactly the leases the node
	// holds, ordered by their next timer event.
	waiters     map[*waiter]struct{}
	timers      timeHeap[*lock]
	reconnectAt time.Time
	timerNext   time.Time // when the timer goroutine wakes next
	timerWake   chan struct{}

	// cut is set while the node's simulated subscriber connection is
	// down: nothing published reaches the node.
	cut atomic.Bool

	// subMu guards changes of the subscription snapshots.
	subMu    sync.Mutex
	invSubs  atomic.Pointer[[]*subscription]
	evSubs   atomic.Pointer[map[string][]*subscription]
	subsLive map[*subscription]struct{}

	invStats invCounters
	evStats  evCounters

	skew atomic.Int64 // see SkewClock
}

var (
	_ coord.Backend      = (*Backend)(nil)
	_ coord.Locker       = (*Locker)(nil)
	_ coord.Lock         = (*lock)(nil)
	_ coord.SessionStore = (*Sessions)(nil)
	_ coord.Invalidator  = (*Invalidator)(nil)
	_ coord.EventBus     = (*Events)(nil)
	_ coord.Subscription = (*subscription)(nil)
)

// New starts a new instance on h. opts may be nil.
func (h *Hub) New(opts *Options) *Backend {
	n := &Backend{
		hub:            h,
		reconnectDelay: 10 * time.Millisecond,
		closeDone:      make(chan struct{}),
		stop:           make(chan struct{}),
		waiters:        make(map[*waiter]struct{}),
		timerWake:      make(chan struct{}, 1),
		subsLive:       make(map[*subscription]struct{}),
	}
	queueBytes := int64(coord.DefaultQueueBytes)
	if opts != nil {
		if opts.QueueBytes != 0 {
			queueBytes = opts.QueueBytes
		}
		n.id = opts.InstanceID
		n.lockDefaults = opts.LockDefaults[:len(opts.LockDefaults):len(opts.LockDefaults)]
		if opts.QueueSize > 0 {
			n.queueSize = opts.QueueSize
		}
		if opts.ReconnectDelay > 0 {
			n.reconnectDelay = opts.ReconnectDelay
		}
	}
	if n.id == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		n.id = "mem-" + hex.EncodeToString(b[:])
	}
	n.budget = subq.NewBudget(queueBytes)
	n.invStats.malformed.gap = subq.NewLimiter(time.Second, func() {
		for _, s := range *n.invSubs.Load() {
			s.Purge(coord.ReasonMalformed)
		}
	})
	n.locker.n = n
	n.sessions.n = n
	n.inv.n = n
	n.events.n = n
	n.invSubs.Store(&[]*subscription{})
	n.evSubs.Store(&map[string][]*subscription{})

	h.nmu.Lock()
	old := *h.nodes.Load()
	nodes := make([]*Backend, len(old), len(old)+1)
	copy(nodes, old)
	nodes = append(nodes, n)
	h.nodes.Store(&nodes)
	h.nmu.Unlock()

	n.wg.Add(1)
	go n.timerLoop()
	return n
}

// Locker returns the node's leases.
func (n *Backend) Locker() coord.Locker { return &n.locker }

// Sessions returns the hub's session store as seen by this node.
func (n *Backend) Sessions() coord.SessionStore { return &n.sessions }

// Invalidator returns the node's cache invalidation.
func (n *Backend) Invalidator() coord.Invalidator { return &n.inv }

// Events returns the node's event bus.
func (n *Backend) Events() coord.EventBus { return &n.events }

// InstanceID returns the node's instance ID.
func (n *Backend) InstanceID() string { return n.id }

// Hub returns the hub the node is on.
func (n *Backend) Hub() *Hub { return n.hub }

// As sets target when it is a **Hub (to the node's hub) or a **Backend (to
// the node itself), and reports whether it did.
func (n *Backend) As(target any) bool {
	switch t := target.(type) {
	case **Hub:
		*t = n.hub
		return true
	case **Backend:
		*t = n
		return true
	}
	return false
}

// Health reports the node's state: Healthy and Connected until Close;
// the subscriber state is Reconnecting while the subscription is cut.
func (n *Backend) Health(ctx context.Context) coord.Health {
	hl := coord.Health{
		Backend:          "memory",
		MessagesReceived: n.invStats.received.Load() + n.evStats.received.Load(),
		Sessions:         -1,
	}
	if n.closed.Load() {
		hl.Status = coord.Unhealthy
		hl.Connection = coord.Disconnected
		hl.Subscriber = coord.Disconnected
		hl.Error = "backend closed"
		return hl
	}
	hl.Status = coord.Healthy
	hl.Connection = coord.Connected
	hl.Subscriber = coord.Connected
	if n.cut.Load() {
		hl.Subscriber = coord.Reconnecting
	}
	hl.Sessions = n.hub.sessions.count(time.Now())
	return hl
}

// Close releases the leases the node holds (waking their waiters), ends
// the node's waiting Acquires with [coord.ErrClosed], ends its
// subscriptions and waits for their running handlers and for the node's
// timer goroutine. Close is idempotent: a later call waits for the first
// to finish and returns nil. If ctx ends before the handlers return,
// Close returns ctx's error; the node is closed all the same, and a
// goroutine Close started waits for the handlers to return. Close must
// not be called from a subscription's handler of the same node.
func (n *Backend) Close(ctx context.Context) error {
	if !n.closed.CompareAndSwap(false, true) {
		select {
		case <-n.closeDone:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("coord/memory: waiting for Close: %w", ctx.Err())
		}
	}
	h := n.hub

	h.nmu.Lock()
	old := *h.nodes.Load()
	nodes := make([]*Backend, 0, len(old))
	for _, o := range old {
		if o != n {
			nodes = append(nodes, o)
		}
	}
	h.nodes.Store(&nodes)
	h.nmu.Unlock()

	h.lmu.Lock()
	for w := range n.waiters {
		w.res.removeWaiter(w)
		w.closed = true
		w.signal()
	}
	clear(n.waiters)
	now := time.Now()
	for len(n.timers) > 0 {
		l := n.timers[0]
		r := l.res
		h.endLocked(l, lockReleased)
		h.promoteLocked(r, now)
	}
	n.reconnectAt = time.Time{}
	h.lmu.Unlock()
	close(n.stop)
	n.invStats.malformed.gap.Stop()

	n.subMu.Lock()
	subs := make([]*subscription, 0, len(n.subsLive))
	for s := range n.subsLive {
		subs = append(subs, s)
	}
	n.subMu.Unlock()
	for _, s := range subs {
		s.Unsubscribe()
	}

	waited := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(waited)
		close(n.closeDone)
	}()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("coord/memory: waiting for handlers to return: %w", ctx.Err())
	}
}

// CutSubscription is a fault hook for tests: it simulates the loss of the
// node's subscriber connection. Invalidations and events published while
// the subscription is cut never reach this node. Invalidation subscribers
// made with [coord.NotifyGaps] receive a [coord.GapStart] at once. After
// the node's ReconnectDelay (see [Options]) the node reconnects by
// itself and every invalidation subscriber of the node receives a
// [coord.PurgeAll] with Reason "reconnect"; event subscribers just resume. Cutting an
// already cut or closed node does nothing more.
func (n *Backend) CutSubscription() {
	if n.closed.Load() {
		return
	}
	h := n.hub
	h.lmu.Lock()
	if n.closed.Load() || n.cut.Load() {
		h.lmu.Unlock()
		return
	}
	n.cut.Store(true)
	n.reconnectAt = time.Now().Add(n.reconnectDelay)
	h.lmu.Unlock()
	for _, s := range *n.invSubs.Load() {
		s.Gap("disconnected")
	}
	n.wakeTimer()
}

// reconnect ends a cut: delivery resumes first, then every invalidation
// subscriber is told to purge, so nothing lost in the gap goes unpurged.
func (n *Backend) reconnect() {
	n.subMu.Lock() // a Subscribe that saw the cut has queued its GapStart
	defer n.subMu.Unlock()
	n.cut.Store(false)
	for _, s := range *n.invSubs.Load() {
		s.Purge(coord.ReasonReconnect)
	}
}

// wakeTimer makes the timer goroutine look at its heap again.
func (n *Backend) wakeTimer() {
	select {
	case n.timerWake <- struct{}{}:
	default:
	}
}

// timerLoop is the node's one goroutine for leases: it renews leases with
// auto-renew at TTL/3, ends leases whose deadline passed (closing their
// Done and handing the resource to the next waiter), and ends a simulated
// subscription cut.
func (n *Backend) timerLoop() {
	defer n.wg.Done()
	h := n.hub
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		h.lmu.Lock()
		now := time.Now()
		next := h.runDueLocked(n, now)
		doReconnect := false
		if !n.reconnectAt.IsZero() {
			if now.Before(n.reconnectAt) {
				if next.IsZero() || n.reconnectAt.Before(next) {
					next = n.reconnectAt
				}
			} else {
				n.reconnectAt = time.Time{}
				doReconnect = true
			}
		}
		if next.IsZero() {
			next = now.Add(time.Hour)
		}
		n.timerNext = next
		h.lmu.Unlock()
		if doReconnect {
			n.reconnect()
		}
		t.Reset(next.Sub(now))
		select {
		case <-t.C:
		case <-n.timerWake:
		case <-n.stop:
			return
		}
	}
}

func errClosed(what string) error {
	return fmt.Errorf("%w: coord/memory: %s", coord.ErrClosed, what)
}

// Restart is a fault hook for tests: it simulates a restart, without
// persistence, of the server under every node of the hub. Every lease
// ends (its Done closes, and its first waiter, if any, gets the resource),
// every session is lost, and every node's subscription is cut as by
// [Backend.CutSubscription], so each node reconnects after its
// ReconnectDelay and tells its invalidation subscribers to purge. The fence
// counter survives: a lease after the restart still gets a higher fence.
func (h *Hub) Restart() {
	h.lmu.Lock()
	now := time.Now()
	for _, r := range h.resources {
		if r.holder != nil {
			h.endLocked(r.holder, lockLost)
			h.promoteLocked(r, now)
		}
	}
	h.shapes.restartLocked(h, now)
	h.lmu.Unlock()

	st := &h.sessions
	st.mu.Lock()
	st.init()
	st.heap = nil
	st.oldest, st.newest = nil, nil
	st.mu.Unlock()
	h.rates.restart()

	for _, n := range *h.nodes.Load() {
		n.CutSubscription()
	}
}
