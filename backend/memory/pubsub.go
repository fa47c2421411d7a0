package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync/atomic"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/subq"
	"github.com/cgn-bot/coord/internal/wire"
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
	trace    coord.TraceCarrier
}

type invCounters struct {
	sent, received, dropped, purges, panics atomic.Uint64
	malformed                               malformedCount
}

// malformedCount counts the malformed invalidations a node dropped. A
// dropped invalidation is a gap: each count also asks the node's limiter
// for a PurgeAll [coord.ReasonMalformed] (at most one per second, the
// last always followed by one).
type malformedCount struct {
	atomic.Uint64
	gap *subq.Limiter
}

// Add counts d malformed invalidations and asks for a PurgeAll.
func (c *malformedCount) Add(d uint64) uint64 {
	v := c.Uint64.Add(d)
	if c.gap != nil {
		c.gap.Hit()
	}
	return v
}

type evCounters struct {
	published, received, dropped, malformed, panics atomic.Uint64
}

// Invalidator is a [Backend]'s [coord.Invalidator]. Invalidations reach the
// other nodes of the hub at once, each subscription through its own
// bounded queue and goroutine.
//
// An Invalidator is safe for concurrent use by multiple goroutines.
type Invalidator struct{ n *Backend }

// Events is a [Backend]'s [coord.EventBus]. Events reach the other nodes
// of the hub at once, each subscription through its own bounded queue and
// goroutine.
//
// An Events is safe for concurrent use by multiple goroutines.
type Events struct{ n *Backend }

// wireTrace returns a copy of c when the Redis wire would carry it, else
// nil, so that both backends deliver the same trace context.
func wireTrace(c coord.TraceCarrier) coord.TraceCarrier {
	if !wire.ValidTrace(c) {
		return nil
	}
	return maps.Clone(c)
}

// now returns the time with the millisecond resolution of the wire.
func nowMilli() time.Time { return time.UnixMilli(time.Now().UnixMilli()) }

// Invalidate tells the other nodes that key changed. A nil meta arrives
// as empty Metadata.
func (iv *Invalidator) Invalidate(ctx context.Context, key string, meta any) error {
	if err := driver.ValidateName("key", key); err != nil {
		return err
	}
	return iv.publish(coord.KeyInvalidation, key, meta, coord.TraceFrom(ctx))
}

// InvalidatePattern tells the other nodes that every key matching glob
// (see [coord.MatchGlob]) changed.
func (iv *Invalidator) InvalidatePattern(ctx context.Context, glob string, meta any) error {
	if err := driver.ValidateGlob(glob); err != nil {
		return err
	}
	return iv.publish(coord.PatternInvalidation, glob, meta, coord.TraceFrom(ctx))
}

func (iv *Invalidator) publish(kind coord.InvalidationKind, key string, meta any, trace coord.TraceCarrier) error {
	n := iv.n
	m := &message{kind: kind, key: key, instance: n.id, trace: wireTrace(trace)}
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
	m.ts = n.clockMilli()
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

func (n *Backend) receiveInvalidation(m *message) {
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

func (n *Backend) receiveEvent(m *message) {
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
		return nil, fmt.Errorf("%w: coord/memory: nil handler", coord.ErrInvalid)
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
func (eb *Events) Publish(ctx context.Context, topic string, payload any) error {
	n := eb.n
	if err := driver.ValidateName("topic", topic); err != nil {
		return err
	}
	raw, err := encodeEventPayload(payload, n.hub.maxPayload)
	if err != nil {
		return err
	}
	if n.closed.Load() {
		return errClosed("Publish")
	}
	m := &message{key: topic, payload: raw, instance: n.id, ts: n.clockMilli(), trace: wireTrace(coord.TraceFrom(ctx))}
	n.evStats.published.Add(1)
	n.hub.fanOut(m)
	return nil
}

// Subscribe calls fn for each event on topic from the other nodes (and
// this one's with [coord.IncludeOwn]); see [coord.EventBus.Subscribe].
func (eb *Events) Subscribe(ctx context.Context, topic string, fn func(coord.Event), opts ...coord.SubscribeOption) (coord.Subscription, error) {
	if err := driver.ValidateName("topic", topic); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: coord/memory: nil handler", coord.ErrInvalid)
	}
	return eb.n.subscribe(ctx, topic, nil, fn, opts)
}

// Stats returns the node's event counters.
func (eb *Events) Stats() coord.EventStats {
	c := &eb.n.evStats
	return coord.EventStats{
		Published: c.published.Load(),
		Received:  c.received.Load(),
		Dropped:   c.dropped.Load(),
		Malformed: c.malformed.Load(),
		Panics:    c.panics.Load(),
	}
}

// subscription is one Subscribe: a queue of the subscription engine
// (internal/subq, shared with the Redis backend), drained by its own
// goroutine, which calls the handler one message at a time. Its queued
// bytes count against the node's budget ([Options].QueueBytes).
type subscription struct {
	*subq.Queue[*message]
	n       *Backend
	inv     func(coord.Invalidation) // for an invalidation subscription
	ev      func(coord.Event)        // for an event subscription
	topic   string
	onlyKey string
	own     bool
}

// msgSize is what a queued message holds, in bytes.
func msgSize(m *message) int {
	return len(m.key) + len(m.payload) + len(m.instance) + wire.TraceSize(m.trace)
}

// control makes the PurgeAll or GapStart of an invalidation queue.
func control(c subq.Control, reason string) *message {
	if c == subq.Gap {
		return &message{kind: coord.GapStart, reason: reason}
	}
	return &message{kind: coord.PurgeAll, reason: reason}
}

func (n *Backend) subscribe(ctx context.Context, topic string, inv func(coord.Invalidation), ev func(coord.Event), opts []coord.SubscribeOption) (coord.Subscription, error) {
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
	o, err := driver.NewSubscribeOptions(all...)
	if err != nil {
		return nil, err
	}
	if n.closed.Load() {
		return nil, errClosed("Subscribe")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("coord/memory: subscribe: %w", err)
	}
	s := &subscription{
		n:     n,
		inv:   inv,
		ev:    ev,
		topic: topic,
		own:   o.IncludeOwn,
	}
	cfg := subq.Config[*message]{
		Limit:   o.QueueSize,
		Handler: s.deliver,
		Size:    msgSize,
		Budget:  n.budget,
		OnExit:  func() { n.removeSub(s) },
	}
	if inv != nil {
		s.onlyKey = o.Key
		cfg.Control = control
		cfg.Gaps = o.Gaps
		cfg.Dropped, cfg.Purges, cfg.Panics = &n.invStats.dropped, &n.invStats.purges, &n.invStats.panics
	} else {
		cfg.Dropped, cfg.Panics = &n.evStats.dropped, &n.evStats.panics
	}
	s.Queue = subq.New(cfg)
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
	s.Start(ctx, &n.wg)
	if inv != nil && n.cut.Load() {
		// The PurgeAll follows at the reconnect, which takes subMu.
		s.Gap("disconnected")
	}
	n.subMu.Unlock()
	return s, nil
}

// removeSub takes s out of the node's snapshots.
func (n *Backend) removeSub(s *subscription) {
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

// enqueue queues m and reports whether it did. On a full queue m is
// dropped and counted and, for an invalidation subscription, a PurgeAll
// follows what is queued.
func (s *subscription) enqueue(m *message) bool { return s.Push(m) }

// deliver calls the handler with a copy of m.
func (s *subscription) deliver(m *message) {
	var payload json.RawMessage
	if len(m.payload) > 0 {
		payload = append(json.RawMessage(nil), m.payload...)
	}
	if s.inv != nil {
		inv := coord.Invalidation{Kind: m.kind, Key: m.key, Metadata: payload, InstanceID: m.instance, Timestamp: m.ts, Trace: maps.Clone(m.trace)}
		if m.kind == coord.PurgeAll || m.kind == coord.GapStart {
			inv.Reason = m.reason
			inv.Timestamp = nowMilli()
		}
		s.inv(inv)
		return
	}
	s.ev(coord.Event{Topic: m.key, Payload: payload, InstanceID: m.instance, Timestamp: m.ts, Trace: maps.Clone(m.trace)})
}
