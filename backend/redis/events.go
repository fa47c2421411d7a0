package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cgn-bot/coord"
)

// Events is the Backend's [coord.EventBus]: every topic travels on the
// Node design's one channel (prefix + "shard:event"), the topic in the
// message's "event" field. It is safe for concurrent use by multiple
// goroutines.
type Events struct {
	b *Backend

	mu   sync.Mutex
	subs map[string]map[*evSub]struct{} // by topic
	wg   sync.WaitGroup

	published, received, dropped, malformed, panics atomic.Uint64
	purges                                          atomic.Uint64 // unused: events are not purged
}

type evSub struct {
	*subscription[coord.Event]
	topic string
	opts  coord.SubscribeOptions
}

func newEvents(b *Backend) *Events {
	return &Events{b: b, subs: map[string]map[*evSub]struct{}{}}
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
	if err := coord.ValidateName("topic", topic); err != nil {
		return err
	}
	raw, err := coord.EncodePayload(payload, b.opts.MaxPayload)
	if err != nil {
		return err
	}
	msg := encodeEvent(b.opts.InstanceID, topic, raw, time.Now())
	if err := b.fail(ctx, "publish event", b.publish(ctx, b.keys.chEvent, msg)); err != nil {
		return err
	}
	e.published.Add(1)
	return nil
}

// Subscribe calls fn for each event on topic from other instances (and
// this one's with [coord.IncludeOwn]). The subscription is live when
// Subscribe returns.
func (e *Events) Subscribe(ctx context.Context, topic string, fn func(coord.Event), opts ...coord.SubscribeOption) (coord.Subscription, error) {
	b := e.b
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	if err := coord.ValidateName("topic", topic); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: coord/redis: nil handler", coord.ErrInvalid)
	}
	o, err := coord.NewSubscribeOptions(append([]coord.SubscribeOption{coord.WithQueueSize(b.opts.QueueSize)}, opts...)...)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("coord/redis: subscribe: %w", err)
	}
	s := &evSub{topic: topic, opts: o}
	s.subscription = newSubscription(o.QueueSize, fn, subCounters{&e.dropped, &e.purges, &e.panics})
	s.onPanic = panicLogger(b, "event")
	ready, err := b.sub.acquire(ctx, b.keys.chEvent, kindEvent)
	if err != nil {
		return nil, err
	}
	s.onExit = func() {
		e.mu.Lock()
		if m := e.subs[topic]; m != nil {
			delete(m, s)
			if len(m) == 0 {
				delete(e.subs, topic)
			}
		}
		e.mu.Unlock()
		if !b.closed.Load() {
			b.sub.release(b.keys.chEvent)
		}
	}
	e.mu.Lock()
	if b.closed.Load() {
		e.mu.Unlock()
		b.sub.release(b.keys.chEvent)
		return nil, b.checkOpen()
	}
	m := e.subs[topic]
	if m == nil {
		m = map[*evSub]struct{}{}
		e.subs[topic] = m
	}
	m[s] = struct{}{}
	s.start(ctx, &e.wg)
	e.mu.Unlock()
	if !b.waitReady(ctx, ready, subscribeWait) {
		b.opts.Logger.Warn("coord/redis: event subscription not confirmed yet; it becomes live on reconnect")
	}
	return s, nil
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
// subscription of its topic.
func (e *Events) deliver(payload string) {
	ev, err := decodeEvent(payload)
	if err != nil {
		e.malformed.Add(1)
		return
	}
	self := e.b.opts.InstanceID
	matched := false
	e.mu.Lock()
	for s := range e.subs[ev.Topic] {
		if ev.InstanceID == self && !s.opts.IncludeOwn {
			continue
		}
		v := ev
		if matched { // the first subscriber gets the decoded payload, the others a copy
			v.Payload = append(json.RawMessage(nil), ev.Payload...)
		}
		s.push(v)
		matched = true
	}
	e.mu.Unlock()
	if matched {
		e.received.Add(1)
	}
}

// shutdown ends every subscription and waits for their goroutines.
func (e *Events) shutdown() {
	e.mu.Lock()
	var subs []*evSub
	for _, m := range e.subs {
		for s := range m {
			subs = append(subs, s)
		}
	}
	e.mu.Unlock()
	for _, s := range subs {
		s.Unsubscribe()
	}
	e.wg.Wait()
}
