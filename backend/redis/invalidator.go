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

// subscribeWait bounds how long Subscribe waits for the server to confirm
// a new channel subscription; past it the subscription is returned and
// becomes live when the connection comes back.
const subscribeWait = 5 * time.Second

// Invalidator is the Backend's [coord.Invalidator]: invalidations go out
// with PUBLISH on the channels prefix + "cache:invalidate" and prefix +
// "cache:invalidate:pattern" (docs/WIRE.md) and come in through the
// Backend's subscriber connection. It is safe for concurrent use by
// multiple goroutines.
type Invalidator struct {
	b    *Backend
	head []byte // envelopeHead of the instance ID

	mu   sync.Mutex                // serializes changes to subs
	subs atomic.Pointer[[]*invSub] // copied on change, read without mu
	wg   sync.WaitGroup

	// malformedGap sends the PurgeAll of dropped messages, at most one
	// per second.
	malformedGap *subq.Limiter

	sent, received, dropped, purges, malformed, panics atomic.Uint64
}

type invSub struct {
	*subq.Queue[coord.Invalidation]
	opts coord.SubscribeOptions
}

// malformedEvery is the least time between two PurgeAlls for malformed
// invalidations.
const malformedEvery = time.Second

func newInvalidator(b *Backend) *Invalidator {
	i := &Invalidator{b: b, head: envelopeHead(b.opts.InstanceID)}
	i.subs.Store(&[]*invSub{})
	i.malformedGap = subq.NewLimiter(malformedEvery, func() { i.purgeAll(coord.ReasonMalformed) })
	return i
}

// addLocked adds s to the subscriptions. i.mu is held.
func (i *Invalidator) addLocked(s *invSub) {
	old := *i.subs.Load()
	subs := make([]*invSub, len(old), len(old)+1)
	copy(subs, old)
	subs = append(subs, s)
	i.subs.Store(&subs)
}

// remove takes s out of the subscriptions.
func (i *Invalidator) remove(s *invSub) {
	i.mu.Lock()
	defer i.mu.Unlock()
	old := *i.subs.Load()
	subs := make([]*invSub, 0, len(old))
	for _, o := range old {
		if o != s {
			subs = append(subs, o)
		}
	}
	i.subs.Store(&subs)
}

// As forwards to [Backend.As].
func (i *Invalidator) As(target any) bool { return i.b.As(target) }

// Invalidate publishes an invalidation of key. May return
// [coord.ErrInvalid], [coord.ErrClosed] or [coord.ErrUnavailable].
func (i *Invalidator) Invalidate(ctx context.Context, key string, meta any) error {
	return i.publish(ctx, key, meta, false)
}

// InvalidatePattern publishes an invalidation of every key matching glob
// (Redis glob rules) on the pattern channel.
func (i *Invalidator) InvalidatePattern(ctx context.Context, glob string, meta any) error {
	return i.publish(ctx, glob, meta, true)
}

func (i *Invalidator) publish(ctx context.Context, key string, meta any, pattern bool) error {
	b := i.b
	if err := b.checkOpen(); err != nil {
		return err
	}
	ch := b.keys.chInvalidate
	if pattern {
		if err := driver.ValidateGlob(key); err != nil {
			return err
		}
		ch = b.keys.chPattern
	} else if err := driver.ValidateName("key", key); err != nil {
		return err
	}
	raw, err := encodePayload(meta, b.opts.MaxPayload)
	if err != nil {
		return err
	}
	msg := encodeMessage(i.head, fieldCacheKey, key, fieldMetadata, raw, time.Now())
	msg = wire.AppendTrace(msg, coord.TraceFrom(ctx))
	if err := b.fail(ctx, "publish invalidation", b.publish(ctx, ch, msg)); err != nil {
		return err
	}
	i.sent.Add(1)
	return nil
}

// Subscribe calls fn for each invalidation from other instances (and this
// one's with [coord.IncludeOwn]); with [coord.OnlyKey] only for those that
// cover that key. After a gap in delivery (a reconnect, a queue overflow,
// a malformed message dropped) fn receives a [coord.PurgeAll]; with
// [coord.NotifyGaps] it also receives a [coord.GapStart] as soon as the
// subscriber connection is known or suspected down (a PING unanswered
// for [Options.PingTimeout]). The subscription is live when Subscribe
// returns, or else starts with a GapStart. Its queue holds
// [coord.DefaultInvalidationQueueSize] invalidations unless
// [coord.WithQueueSize] or [Options.QueueSize] says otherwise, within the
// Backend's byte budget ([Options.QueueBytes]).
func (i *Invalidator) Subscribe(ctx context.Context, fn func(coord.Invalidation), opts ...coord.SubscribeOption) (coord.Subscription, error) {
	b := i.b
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: coord/redis: nil handler", coord.ErrInvalid)
	}
	size := b.opts.QueueSize
	if size == 0 {
		size = coord.DefaultInvalidationQueueSize
	}
	o, err := driver.NewSubscribeOptions(append([]coord.SubscribeOption{coord.WithQueueSize(size)}, opts...)...)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("coord/redis: subscribe: %w", err)
	}
	s := &invSub{opts: o}
	s.Queue = subq.New(subq.Config[coord.Invalidation]{
		Limit:   o.QueueSize,
		Handler: fn,
		Size:    invSize,
		Control: invControl,
		Gaps:    o.Gaps,
		Budget:  b.budget,
		Dropped: &i.dropped,
		Purges:  &i.purges,
		Panics:  &i.panics,
		OnPanic: panicLogger(b, "invalidation"),
		OnExit: func() {
			i.remove(s)
			if !b.closed.Load() {
				b.sub.release(b.keys.chInvalidate)
				b.sub.release(b.keys.chPattern)
			}
		},
	})

	r1, err := b.sub.acquire(ctx, b.keys.chInvalidate, kindInvalidate)
	if err != nil {
		return nil, err
	}
	r2, err := b.sub.acquire(ctx, b.keys.chPattern, kindPattern)
	if err != nil {
		b.sub.release(b.keys.chInvalidate)
		return nil, err
	}
	i.mu.Lock()
	if b.closed.Load() {
		i.mu.Unlock()
		b.sub.release(b.keys.chInvalidate)
		b.sub.release(b.keys.chPattern)
		return nil, b.checkOpen()
	}
	i.addLocked(s)
	s.Start(ctx, &i.wg)
	i.mu.Unlock()
	b.sub.gapIfOpen(s)
	if !b.waitReady(ctx, r1, subscribeWait) || !b.waitReady(ctx, r2, subscribeWait) {
		// Not live yet: the subscribers purge once it is.
		b.sub.purgeWhenConfirmed(b.keys.chInvalidate, s)
		b.sub.purgeWhenConfirmed(b.keys.chPattern, s)
		b.opts.Logger.Warn("coord/redis: invalidation subscription not confirmed yet; it becomes live on reconnect")
	}
	return s, nil
}

// Stats returns this instance's counters.
func (i *Invalidator) Stats() coord.InvalidatorStats {
	return coord.InvalidatorStats{
		Sent:      i.sent.Load(),
		Received:  i.received.Load(),
		Dropped:   i.dropped.Load(),
		Purges:    i.purges.Load(),
		Malformed: i.malformed.Load(),
		Panics:    i.panics.Load(),
	}
}

// covers reports whether inv is for the subscription.
func (s *invSub) covers(inv coord.Invalidation, self string) bool {
	if inv.InstanceID == self && !s.opts.IncludeOwn {
		return false
	}
	if s.opts.Key == "" {
		return true
	}
	return inv.Matches(s.opts.Key)
}

// deliver decodes a message from an invalidation channel and queues it
// for each subscription it is for. It runs on the subscriber loop, the
// only caller, and takes no lock but the queues'. payload is a string
// go-redis made for this message alone, so the decoded key and instance
// ID may slice it: the queued item is charged for it, and detachInv
// copies them out of a large one.
func (i *Invalidator) deliver(payload string, pattern bool) {
	inv, err := wire.DecodeInvalidationView(payload, pattern)
	if err != nil {
		// A dropped invalidation is a gap: a near cache may hold what it
		// covered.
		i.malformed.Add(1)
		i.malformedGap.Hit()
		return
	}
	self := i.b.opts.InstanceID
	matched, queued := false, false
	size := 0
	for _, s := range *i.subs.Load() {
		if !s.covers(inv, self) {
			continue
		}
		v := inv
		if matched && len(v.Metadata) > 0 { // the first subscriber gets the decoded metadata, the others a copy
			v.Metadata = append(json.RawMessage(nil), v.Metadata...)
		}
		if matched {
			v.Trace = maps.Clone(v.Trace)
		}
		if !matched {
			size = detachInv(&inv, payload)
			v = inv
		}
		matched = true
		if s.PushSized(v, size) {
			queued = true
		}
	}
	if queued {
		i.received.Add(1)
	}
}

// purgeAll queues a PurgeAll for every subscription.
func (i *Invalidator) purgeAll(reason string) {
	for _, s := range *i.subs.Load() {
		s.Purge(reason)
	}
}

// gapAll tells every subscription that asked for it that a gap started.
func (i *Invalidator) gapAll(reason string) {
	for _, s := range *i.subs.Load() {
		s.Gap(reason)
	}
}

// stop ends every subscription; it does not wait for their goroutines
// (i.wg).
func (i *Invalidator) stop() {
	i.malformedGap.Stop()
	i.mu.Lock() // a Subscribe that saw the Backend open has added its subscription
	subs := *i.subs.Load()
	i.mu.Unlock()
	for _, s := range subs {
		s.Unsubscribe()
	}
}
