package redis

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// subCounters are the counters a subscription updates.
type subCounters struct {
	dropped, purges, panics *atomic.Uint64
}

// keptRing is the largest ring a drained queue keeps.
const keptRing = 1024

// subscription is one Subscribe: a bounded queue drained by its own
// goroutine, which calls the handler one item at a time. Pushing never
// blocks. When the queue is full the new item is dropped and counted; an
// invalidation subscription (purge != nil) then queues one PurgeAll
// behind what is queued (unless its last item is already one), so a flood
// ends in a counted full purge, never a silent skip, and what was queued
// before the drop is still delivered. The queue holds at most its length
// plus that one PurgeAll.
//
// The queue is a ring that grows on demand up to that size, and is
// released once drained if it grew past keptRing. A push that
// finds the goroutine parked on an empty queue hands the item over
// through a channel, which wakes it; pushes that find it running add to
// the ring under the mutex and do nothing more.
type subscription[T any] struct {
	limit   int
	handler func(T)
	purge   func(reason string) T // nil for events
	isPurge func(T) bool
	cnt     subCounters
	onPanic func(any)

	mu      sync.Mutex
	ring    []T // items ring[head], ring[head+1], ... (mod len), n of them
	head, n int
	idle    bool // the ring is empty and the goroutine parked on hand (or about to be)
	stopped bool
	halted  atomic.Bool   // stopped, for the goroutine to read without mu
	hand    chan T        // buffered 1: the item for the parked goroutine, or a zero value when stopped
	done    chan struct{} // closed when the goroutine has returned

	stopCtx func() bool
	onExit  func() // runs on the goroutine before done is closed
}

func newSubscription[T any](limit int, handler func(T), cnt subCounters) *subscription[T] {
	return &subscription[T]{
		limit:   limit,
		handler: handler,
		cnt:     cnt,
		hand:    make(chan T, 1),
		done:    make(chan struct{}),
	}
}

// start runs the delivery goroutine, owned by wg, and ends the
// subscription when ctx ends.
func (s *subscription[T]) start(ctx context.Context, wg *sync.WaitGroup) {
	wg.Go(s.run)
	s.mu.Lock()
	s.stopCtx = context.AfterFunc(ctx, s.Unsubscribe)
	s.mu.Unlock()
}

// handLocked hands v to the goroutine when it is parked on an empty
// ring, and reports whether it did; it unlocks s.mu then. s.mu is held.
func (s *subscription[T]) handLocked(v T) bool {
	if !s.idle {
		return false
	}
	s.idle = false
	s.mu.Unlock()
	s.hand <- v // never blocks: one item per park, taken before the next
	return true
}

// push queues v; it reports whether v was queued.
func (s *subscription[T]) push(v T) bool {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return false
	}
	if s.handLocked(v) {
		return true
	}
	ok := true
	if s.n >= s.limit {
		ok = false
		s.cnt.dropped.Add(1)
		if s.purge != nil {
			s.queuePurgeLocked("overflow")
		}
	} else {
		s.appendLocked(v)
	}
	s.mu.Unlock()
	return ok
}

// pushPurge queues a PurgeAll after what is queued.
func (s *subscription[T]) pushPurge(reason string) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	if s.handLocked(s.purge(reason)) {
		return
	}
	s.queuePurgeLocked(reason)
	s.mu.Unlock()
}

// queuePurgeLocked appends a PurgeAll unless the last item queued is one
// (it covers everything before its delivery), even to a full queue.
func (s *subscription[T]) queuePurgeLocked(reason string) {
	if s.n > 0 && s.isPurge(s.ring[(s.head+s.n-1)%len(s.ring)]) {
		return
	}
	s.appendLocked(s.purge(reason))
}

// appendLocked appends v, growing the ring when it is full (by doubling,
// up to the most the queue can hold: limit items and one PurgeAll).
func (s *subscription[T]) appendLocked(v T) {
	if s.n == len(s.ring) {
		size := max(min(2*len(s.ring), s.limit+1), 8, s.n+1)
		ring := make([]T, size)
		k := copy(ring, s.ring[s.head:])
		copy(ring[k:], s.ring[:s.head])
		s.ring, s.head = ring, 0
	}
	i := s.head + s.n
	if i >= len(s.ring) {
		i -= len(s.ring)
	}
	s.ring[i] = v
	s.n++
}

// next takes the first item, parking the goroutine while the queue is
// empty; ok is false once the subscription has stopped.
func (s *subscription[T]) next() (v T, ok bool) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return v, false
	}
	if s.n == 0 {
		s.idle = true
		s.mu.Unlock()
		v = <-s.hand
		return v, !s.halted.Load()
	}
	var zero T
	v, s.ring[s.head] = s.ring[s.head], zero
	s.head++
	if s.head == len(s.ring) {
		s.head = 0
	}
	s.n--
	if s.n == 0 && len(s.ring) > keptRing {
		s.ring, s.head = nil, 0 // a flood is over: give its memory back
	}
	s.mu.Unlock()
	return v, true
}

func (s *subscription[T]) run() {
	defer close(s.done)
	defer func() {
		if s.onExit != nil {
			s.onExit()
		}
	}()
	for {
		v, ok := s.next()
		if !ok {
			return
		}
		if s.isPurge != nil && s.isPurge(v) {
			s.cnt.purges.Add(1)
		}
		s.call(v)
	}
}

func (s *subscription[T]) call(v T) {
	defer func() {
		if r := recover(); r != nil {
			s.cnt.panics.Add(1)
			if s.onPanic != nil {
				s.onPanic(r)
			}
		}
	}()
	s.handler(v)
}

// Unsubscribe ends the subscription: the handler is not called again. It
// is idempotent and safe to call from the handler.
func (s *subscription[T]) Unsubscribe() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.halted.Store(true)
	s.ring, s.head, s.n = nil, 0, 0
	wake := s.idle
	s.idle = false
	stop := s.stopCtx
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	if wake {
		var zero T
		s.hand <- zero // never blocks: nothing was handed since the goroutine parked
	}
}

// Done returns a channel closed when the subscription has ended and its
// handler is no longer running.
func (s *subscription[T]) Done() <-chan struct{} { return s.done }

func panicLogger(b *Backend, what string) func(any) {
	return func(r any) {
		b.opts.Logger.Error("coord/redis: "+what+" handler panicked (recovered)", "panic", fmt.Sprint(r))
	}
}
