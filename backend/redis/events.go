package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/subq"
	"github.com/cgn-bot/coord/internal/wire"
)

// Events is the Backend's [coord.EventBus]: every topic travels on the
// one channel prefix + "shard:event", the topic in the message's "event"
// field (docs/WIRE.md). It is safe for concurrent use by multiple
// goroutines.
type Events struct {
	b    *Backend
	head []byte // envelopeHead of the instance ID

	mu   sync.Mutex                          // serializes changes to subs
	subs atomic.Pointer[map[string][]*evSub] // by topic; copied on change, read without mu
	wg   sync.WaitGroup

	published, received, dropped, malformed, panics atomic.Uint64
}

type evSub struct {
	*subq.Queue[coord.Event]
	topic string
	opts  coord.SubscribeOptions
}

func newEvents(b *Backend) *Events {
	e := &Events{b: b, head: envelopeHead(b.opts.InstanceID)}
	e.subs.Store(&map[string][]*evSub{})
	return e
}

// updateLocked replaces the subscriptions of topic by what change returns for
// them. e.mu is held.
func (e *Events) updateLocked(topic string, change func([]*evSub) []*evSub) {
	old := *e.subs.Load()
	m := make(map[string][]*evSub, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	if subs := change(old[topic]); len(subs) > 0 {
		m[topic] = subs
	} else {
		delete(m, topic)
	}
	e.subs.Store(&m)
}

// As forwards to [Backend.As].
func (e *Events) As(target any) bool { return e.b.As(target) }

// Publish sends payload on topic to the other instances. May return
// [coord.ErrInvalid], [coord.ErrClosed] or [coord.ErrUnavailable].
func (e *Events) Publish(ctx context.Context, topic string, payload any) error {
	b := e.b
	if err := b.checkOpen(); err != nil {
		return err
	}
	if err := driver.ValidateName("topic", topic); err != nil {
		return err
	}
	raw, err := encodePayload(payload, b.opts.MaxPayload)
	if err != nil {
		return err
	}
	msg := encodeMessage(e.head, fieldEvent, topic, fieldPayload, raw, time.Now())
	msg = wire.AppendTrace(msg, coord.TraceFrom(ctx))
	if err := b.fail(ctx, "publish event", b.publish(ctx, b.keys.chEvent, msg)); err != nil {
		return err
	}
	e.published.Add(1)
	return nil
}

// Subscribe calls fn for each event on topic from other instances (and
// this one's with [coord.IncludeOwn]). The subscription is live when
// Subscribe returns. Its queue holds [coord.DefaultQueueSize] events
// unless [coord.WithQueueSize] or [Options.QueueSize] says otherwise,
// within the Backend's byte budget ([Options.QueueBytes]); an event that
// finds it full is dropped and counted.
func (e *Events) Subscribe(ctx context.Context, topic string, fn func(coord.Event), opts ...coord.SubscribeOption) (coord.Subscription, error) {
	b := e.b
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	if err := driver.ValidateName("topic", topic); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: coord/redis: nil handler", coord.ErrInvalid)
	}
	size := b.opts.QueueSize
	if size == 0 {
		size = coord.DefaultQueueSize
	}
	o, err := driver.NewSubscribeOptions(append([]coord.SubscribeOption{coord.WithQueueSize(size)}, opts...)...)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("coord/redis: subscribe: %w", err)
	}
	s := &evSub{topic: topic, opts: o}
	s.Queue = subq.New(subq.Config[coord.Event]{
		Limit:   o.QueueSize,
		Handler: fn,
		Size:    evSize,
		Budget:  b.budget,
		Dropped: &e.dropped,
		Panics:  &e.panics,
		OnPanic: panicLogger(b, "event"),
		OnExit:  func() { e.unsubscribed(s) },
	})
	ready, err := b.sub.acquire(ctx, b.keys.chEvent, kindEvent)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if b.closed.Load() {
		e.mu.Unlock()
		b.sub.release(b.keys.chEvent)
		return nil, b.checkOpen()
	}
	e.updateLocked(topic, func(old []*evSub) []*evSub {
		return append(old[:len(old):len(old)], s)
	})
	s.Start(ctx, &e.wg)
	e.mu.Unlock()
	if !b.waitReady(ctx, ready, subscribeWait) {
		b.opts.Logger.Warn("coord/redis: event subscription not confirmed yet; it becomes live on reconnect")
	}
	return s, nil
}

// unsubscribed takes s out of the subscriptions once its goroutine ends.
func (e *Events) unsubscribed(s *evSub) {
	b := e.b
	e.mu.Lock()
	e.updateLocked(s.topic, func(old []*evSub) []*evSub {
		subs := make([]*evSub, 0, len(old))
		for _, o := range old {
			if o != s {
				subs = append(subs, o)
			}
		}
		return subs
	})
	e.mu.Unlock()
	if !b.closed.Load() {
		b.sub.release(b.keys.chEvent)
	}
}

// Stats returns this instance's counters.
func (e *Events) Stats() coord.EventStats {
	return coord.EventStats{
		Published: e.published.Load(),
		Received:  e.received.Load(),
		Dropped:   e.dropped.Load(),
		Malformed: e.malformed.Load(),
		Panics:    e.panics.Load(),
	}
}

// deliver decodes a message from the event channel and queues it for each
// subscription of its topic. It runs on the subscriber loop, the only
// caller, and takes no lock but the queues'. The topic and instance ID
// may slice payload, as in [Invalidator.deliver].
func (e *Events) deliver(payload string) {
	ev, err := wire.DecodeEventView(payload)
	if err != nil {
		e.malformed.Add(1)
		return
	}
	self := e.b.opts.InstanceID
	matched, queued := false, false
	size := 0
	for _, s := range (*e.subs.Load())[ev.Topic] {
		if ev.InstanceID == self && !s.opts.IncludeOwn {
			continue
		}
		v := ev
		if matched { // the first subscriber gets the decoded payload, the others a copy
			v.Payload = append(json.RawMessage(nil), ev.Payload...)
			v.Trace = maps.Clone(ev.Trace)
		}
		if !matched {
			size = detachEv(&ev, payload)
			v = ev
		}
		matched = true
		if s.PushSized(v, size) {
			queued = true
		}
	}
	if queued {
		e.received.Add(1)
	}
}

// stop ends every subscription; it does not wait for their goroutines
// (e.wg).
func (e *Events) stop() {
	e.mu.Lock() // a Subscribe that saw the Backend open has added its subscription
	var subs []*evSub
	for _, m := range *e.subs.Load() {
		subs = append(subs, m...)
	}
	e.mu.Unlock()
	for _, s := range subs {
		s.Unsubscribe()
	}
}
