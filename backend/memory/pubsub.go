package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cgn-bot/coord"
)

// message is one invalidation or event as the hub carries it. It is
// shared by every receiver and never changed after publishing; handlers
// get copies of its payload.
type message struct {
	kind     coord.InvalidationKind // zero for an event
	key      string                 // key, glob or topic
	payload  json.RawMessage
	instance string
	ts       time.Time
	reason   string // of a PurgeAll
}

type invCounters struct {
	sent, received, dropped, purges, malformed, panics atomic.Uint64
}

type evCounters struct {
	published, received, dropped, malformed, panics atomic.Uint64
}

// Invalidator is a [Node]'s [coord.Invalidator]. Invalidations reach the
// other nodes of the hub at once, each subscription through its own
// bounded queue and goroutine.
//
// An Invalidator is safe for concurrent use by multiple goroutines.
type Invalidator struct{ n *Node }

// EventBus is a [Node]'s [coord.EventBus]. Events reach the other nodes
// of the hub at once, each subscription through its own bounded queue and
// goroutine.
//
// An EventBus is safe for concurrent use by multiple goroutines.
type EventBus struct{ n *Node }

// now returns the time with the millisecond resolution of the wire.
func nowMilli() time.Time { return time.UnixMilli(time.Now().UnixMilli()) }

// Invalidate tells the other nodes that key changed. A nil meta arrives
// as empty Metadata.
func (iv *Invalidator) Invalidate(ctx context.Context, key string, meta any) error {
	if err := coord.ValidateName("key", key); err != nil {
		return err
	}
	return iv.publish(coord.KeyInvalidation, key, meta)
}

// InvalidatePattern tells the other nodes that every key matching glob
// (see [coord.MatchGlob]) changed.
func (iv *Invalidator) InvalidatePattern(ctx context.Context, glob string, meta any) error {
	if err := coord.ValidateGlob(glob); err != nil {
		return err
	}
	return iv.publish(coord.PatternInvalidation, glob, meta)
}

func (iv *Invalidator) publish(kind coord.InvalidationKind, key string, meta any) error {
	n := iv.n
	m := &message{kind: kind, key: key, instance: n.id}
	if meta != nil {
		raw, err := encodeMetadata(meta, n.hub.maxPayload)
		if err != nil {
			return err
		}
		m.payload = raw
	}
	if n.closed.Load() {
		return errClosed("Invalidate")
	}
	m.ts = nowMilli()
	n.invStats.sent.Add(1)
	n.hub.fanOut(m)
	return nil
}

// fanOut hands m to every connected node.
func (h *Hub) fanOut(m *message) {
	for _, o := range *h.nodes.Load() {
		if o.cut.Load() {
			continue
		}
		if m.kind == 0 {
			o.receiveEvent(m)
		} else {
			o.receiveInvalidation(m)
		}
	}
}

func (n *Node) receiveInvalidation(m *message) {
	own := m.instance == n.id
	accepted := false
	for _, s := range *n.invSubs.Load() {
		if own && !s.own {
			continue
		}
		if s.onlyKey != "" && !(coord.Invalidation{Kind: m.kind, Key: m.key}).Matches(s.onlyKey) {
			continue
		}
		if s.enqueue(m) {
			accepted = true
		}
	}
	if accepted {
		n.invStats.received.Add(1)
	}
}

func (n *Node) receiveEvent(m *message) {
	own := m.instance == n.id
	accepted := false
	for _, s := range (*n.evSubs.Load())[m.key] {
		if own && !s.own {
			continue
		}
		if s.enqueue(m) {
			accepted = true
		}
	}
	if accepted {
		n.evStats.received.Add(1)
	}
}

// Subscribe calls fn for each invalidation from the other nodes (and this
// one's with [coord.IncludeOwn]); see [coord.Invalidator.Subscribe].
func (iv *Invalidator) Subscribe(ctx context.Context, fn func(coord.Invalidation), opts ...coord.SubscribeOption) (coord.Subscription, error) {
	if fn == nil {
		return nil, fmt.Errorf("%w: nil handler", coord.ErrInvalid)
	}
	return iv.n.subscribe(ctx, "", fn, nil, opts)
}

// Stats returns the node's invalidation counters.
func (iv *Invalidator) Stats() coord.InvalidatorStats {
	c := &iv.n.invStats
	return coord.InvalidatorStats{
		Sent:      c.sent.Load(),
		Received:  c.received.Load(),
		Dropped:   c.dropped.Load(),
		Purges:    c.purges.Load(),
		Malformed: c.malformed.Load(),
		Panics:    c.panics.Load(),
	}
}

// Publish sends payload on topic to the other nodes.
func (eb *EventBus) Publish(ctx context.Context, topic string, payload any) error {
	n := eb.n
	if err := coord.ValidateName("topic", topic); err != nil {
		return err
	}
	raw, err := encodeEventPayload(payload, n.hub.maxPayload)
	if err != nil {
		return err
	}
	if n.closed.Load() {
		return errClosed("Publish")
	}
	m := &message{key: topic, payload: raw, instance: n.id, ts: nowMilli()}
	n.evStats.published.Add(1)
	n.hub.fanOut(m)
	return nil
}

// Subscribe calls fn for each event on topic from the other nodes (and
// this one's with [coord.IncludeOwn]); see [coord.EventBus.Subscribe].
func (eb *EventBus) Subscribe(ctx context.Context, topic string, fn func(coord.Event), opts ...coord.SubscribeOption) (coord.Subscription, error) {
	if err := coord.ValidateName("topic", topic); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: nil handler", coord.ErrInvalid)
	}
	return eb.n.subscribe(ctx, topic, nil, fn, opts)
}

// Stats returns the node's event counters.
func (eb *EventBus) Stats() coord.EventStats {
	c := &eb.n.evStats
	return coord.EventStats{
		Published: c.published.Load(),
		Received:  c.received.Load(),
		Dropped:   c.dropped.Load(),
		Malformed: c.malformed.Load(),
		Panics:    c.panics.Load(),
	}
}

// subscription is one Subscribe: a bounded queue drained by its own
// goroutine, which calls the handler one message at a time.
type subscription struct {
	n       *Node
	inv     func(coord.Invalidation) // for an invalidation subscription
	ev      func(coord.Event)        // for an event subscription
	topic   string
	onlyKey string
	own     bool
	ctxDone <-chan struct{}

	mu           sync.Mutex
	ring         []*message // grows up to limit
	head, count  int
	limit        int
	pendingPurge string // reason of a PurgeAll owed once there is room
	stopped      bool

	signal   chan struct{} // buffered 1: the queue has something
	stop     chan struct{} // closed by Unsubscribe
	stopOnce sync.Once
	done     chan struct{} // closed when the goroutine has returned
}

func (n *Node) subscribe(ctx context.Context, topic string, inv func(coord.Invalidation), ev func(coord.Event), opts []coord.SubscribeOption) (coord.Subscription, error) {
	all := make([]coord.SubscribeOption, 0, len(opts)+1)
	size := n.queueSize
	switch {
	case size > 0:
	case inv != nil:
		size = coord.DefaultInvalidationQueueSize
	default:
		size = coord.DefaultQueueSize
	}
	all = append(all, coord.WithQueueSize(size))
	all = append(all, opts...)
	o, err := coord.NewSubscribeOptions(all...)
	if err != nil {
		return nil, err
	}
	if n.closed.Load() {
		return nil, errClosed("Subscribe")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: subscribe: %w", err)
	}
	s := &subscription{
		n:       n,
		inv:     inv,
		ev:      ev,
		topic:   topic,
		own:     o.IncludeOwn,
		ctxDone: ctx.Done(),
		limit:   o.QueueSize,
		signal:  make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if inv != nil {
		s.onlyKey = o.Key
	}
	n.subMu.Lock()
	if n.closed.Load() {
		n.subMu.Unlock()
		return nil, errClosed("Subscribe")
	}
	n.subsLive[s] = struct{}{}
	if inv != nil {
		old := *n.invSubs.Load()
		subs := make([]*subscription, len(old), len(old)+1)
		copy(subs, old)
		subs = append(subs, s)
		n.invSubs.Store(&subs)
	} else {
		old := *n.evSubs.Load()
		m := make(map[string][]*subscription, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		subs := make([]*subscription, len(old[topic]), len(old[topic])+1)
		copy(subs, old[topic])
		m[topic] = append(subs, s)
		n.evSubs.Store(&m)
	}
	n.wg.Add(1)
	n.subMu.Unlock()
	go s.run()
	return s, nil
}

// removeSub takes s out of the node's snapshots.
func (n *Node) removeSub(s *subscription) {
	n.subMu.Lock()
	defer n.subMu.Unlock()
	delete(n.subsLive, s)
	if s.inv != nil {
		old := *n.invSubs.Load()
		subs := make([]*subscription, 0, len(old))
		for _, o := range old {
			if o != s {
				subs = append(subs, o)
			}
		}
		n.invSubs.Store(&subs)
		return
	}
	old := *n.evSubs.Load()
	m := make(map[string][]*subscription, len(old))
	for k, v := range old {
		if k != s.topic {
			m[k] = v
			continue
		}
		subs := make([]*subscription, 0, len(v))
		for _, o := range v {
			if o != s {
				subs = append(subs, o)
			}
		}
		if len(subs) > 0 {
			m[k] = subs
		}
	}
	n.evSubs.Store(&m)
}

// pushLocked appends m; the caller checked there is room.
func (s *subscription) pushLocked(m *message) {
	if s.count == len(s.ring) {
		// Grow (the queue is not full, only its buffer).
		size := min(max(2*len(s.ring), 8), s.limit)
		ring := make([]*message, size)
		for i := 0; i < s.count; i++ {
			ring[i] = s.ring[(s.head+i)%len(s.ring)]
		}
		s.ring, s.head = ring, 0
	}
	s.ring[(s.head+s.count)%len(s.ring)] = m
	s.count++
}

func (s *subscription) wake() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

// enqueue queues m and reports whether it did. On a full queue m is
// dropped and counted and, for an invalidation subscription, a PurgeAll
// is owed.
func (s *subscription) enqueue(m *message) bool {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return false
	}
	if s.count >= s.limit {
		if s.inv != nil && s.pendingPurge == "" {
			s.pendingPurge = "overflow"
		}
		s.mu.Unlock()
		if s.inv != nil {
			s.n.invStats.dropped.Add(1)
		} else {
			s.n.evStats.dropped.Add(1)
		}
		return false
	}
	s.pushLocked(m)
	s.mu.Unlock()
	s.wake()
	return true
}

// enqueuePurge queues a PurgeAll with reason, or owes it until there is
// room.
func (s *subscription) enqueuePurge(reason string) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	if s.count >= s.limit {
		if s.pendingPurge == "" {
			s.pendingPurge = reason
		}
		s.mu.Unlock()
		return
	}
	s.pushLocked(&message{kind: coord.PurgeAll, reason: reason})
	s.mu.Unlock()
	s.wake()
}

// pop takes the next message, or nil when the queue is empty or the
// subscription ended. Taking one makes room for an owed PurgeAll, which
// goes behind what is queued: after the message whose loss it covers.
func (s *subscription) pop() *message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.count == 0 {
		return nil
	}
	m := s.ring[s.head]
	s.ring[s.head] = nil
	s.head = (s.head + 1) % len(s.ring)
	s.count--
	if s.pendingPurge != "" {
		s.pushLocked(&message{kind: coord.PurgeAll, reason: s.pendingPurge})
		s.pendingPurge = ""
	}
	return m
}

func (s *subscription) run() {
	defer s.n.wg.Done()
	defer close(s.done)
	for {
		select {
		case <-s.signal:
		case <-s.stop:
			return
		case <-s.ctxDone:
			s.Unsubscribe()
			return
		}
		for m := s.pop(); m != nil; m = s.pop() {
			s.deliver(m)
		}
	}
}

// deliver calls the handler with a copy of m, recovering a panic.
func (s *subscription) deliver(m *message) {
	defer func() {
		if r := recover(); r != nil {
			if s.inv != nil {
				s.n.invStats.panics.Add(1)
			} else {
				s.n.evStats.panics.Add(1)
			}
		}
	}()
	var payload json.RawMessage
	if len(m.payload) > 0 {
		payload = append(json.RawMessage(nil), m.payload...)
	}
	if s.inv != nil {
		inv := coord.Invalidation{Kind: m.kind, Key: m.key, Metadata: payload, InstanceID: m.instance, Timestamp: m.ts}
		if m.kind == coord.PurgeAll {
			inv.Reason = m.reason
			inv.Timestamp = nowMilli()
			s.n.invStats.purges.Add(1)
		}
		s.inv(inv)
		return
	}
	s.ev(coord.Event{Topic: m.key, Payload: payload, InstanceID: m.instance, Timestamp: m.ts})
}

// Unsubscribe ends the subscription. It does not wait for a running
// handler, so it may be called from within the handler; Done tells when
// the handler has returned.
func (s *subscription) Unsubscribe() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopped = true
		s.ring, s.count, s.head = nil, 0, 0
		s.mu.Unlock()
		close(s.stop)
		s.n.removeSub(s)
	})
}

// Done returns a channel closed when the subscription has ended and its
// handler is not running.
func (s *subscription) Done() <-chan struct{} { return s.done }
