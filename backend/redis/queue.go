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

// subscription is one Subscribe: a bounded queue drained by its own
// goroutine, which calls the handler one item at a time. Pushing never
// blocks. When the queue is full the new item is dropped and counted; an
// invalidation subscription (purge != nil) then queues one PurgeAll
// behind what is queued (unless its last item is already one), so a flood
// ends in a counted full purge, never a silent skip, and what was queued
// before the drop is still delivered. The queue holds at most its length
// plus that one PurgeAll.
type subscription[T any] struct {
	limit   int
	handler func(T)
	purge   func(reason string) T // nil for events
	isPurge func(T) bool
	cnt     subCounters
	onPanic func(any)

	mu      sync.Mutex
	queue   []T // items queue[head:]; the slots before head are free
	head    int
	stopped bool
	notify  chan struct{}
	done    chan struct{}

	stopCtx func() bool
	onExit  func() // runs on the goroutine before done is closed
}

func newSubscription[T any](limit int, handler func(T), cnt subCounters) *subscription[T] {
	return &subscription[T]{
		limit:   limit,
		handler: handler,
		cnt:     cnt,
		notify:  make(chan struct{}, 1),
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

func (s *subscription[T]) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// push queues v; it reports whether v was queued.
func (s *subscription[T]) push(v T) bool {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return false
	}
	ok := true
	if len(s.queue)-s.head >= s.limit {
		ok = false
		s.cnt.dropped.Add(1)
		if s.purge != nil {
			s.queuePurgeLocked("overflow")
		}
	} else {
		s.appendLocked(v)
	}
	s.mu.Unlock()
	s.signal()
	return ok
}

// pushPurge queues a PurgeAll after what is queued.
func (s *subscription[T]) pushPurge(reason string) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.queuePurgeLocked(reason)
	s.mu.Unlock()
	s.signal()
}

// queuePurgeLocked appends a PurgeAll unless the last item queued is one
// (it covers everything before its delivery), even to a full queue.
func (s *subscription[T]) queuePurgeLocked(reason string) {
	if n := len(s.queue); n > s.head && s.isPurge(s.queue[n-1]) {
		return
	}
	s.appendLocked(s.purge(reason))
}

// appendLocked appends v, reusing the free slots at the front before the
// backing array would grow.
func (s *subscription[T]) appendLocked(v T) {
	if len(s.queue) == cap(s.queue) && s.head > 0 {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue = s.queue[:n]
		s.head = 0
	}
	s.queue = append(s.queue, v)
}

func (s *subscription[T]) run() {
	defer close(s.done)
	defer func() {
		if s.onExit != nil {
			s.onExit()
		}
	}()
	for {
		s.mu.Lock()
		for len(s.queue) == s.head && !s.stopped {
			s.mu.Unlock()
			<-s.notify
			s.mu.Lock()
		}
		if s.stopped {
			s.mu.Unlock()
			return
		}
		v := s.queue[s.head]
		var zero T
		s.queue[s.head] = zero
		s.head++
		if s.head == len(s.queue) {
			s.queue, s.head = s.queue[:0], 0
		}
		s.mu.Unlock()
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
	s.queue, s.head = nil, 0
	stop := s.stopCtx
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.signal()
}

// Done returns a channel closed when the subscription has ended and its
// handler is no longer running.
func (s *subscription[T]) Done() <-chan struct{} { return s.done }

func panicLogger(b *Backend, what string) func(any) {
	return func(r any) {
		b.opts.Logger.Error("coord/redis: "+what+" handler panicked (recovered)", "panic", fmt.Sprint(r))
	}
}
