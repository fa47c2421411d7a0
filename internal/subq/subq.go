// Package subq is the subscription engine both backends use: a bounded
// queue per subscription, drained by its own goroutine that calls the
// handler one item at a time, with a per-backend byte budget, overflow
// turned into one counted PurgeAll, gap notices, and panic recovery.
//
// Pushing never blocks. When a queue is full (its length, or the
// backend's byte budget) the new item is dropped and counted; a queue
// with control items (invalidations) then queues one PurgeAll behind what
// is queued, unless its last item already is one, so a flood ends in a
// counted full purge, never a silent skip, and what was queued before the
// drop is still delivered. A queue holds at most its length plus that one
// PurgeAll and one gap notice.
package subq

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Control says what a control item asks of an invalidation subscriber.
type Control int

const (
	// Purge is a PurgeAll: delivery had a gap, anything may have changed.
	Purge Control = iota + 1
	// Gap says delivery may have stopped: a PurgeAll follows once it is
	// live again.
	Gap
)

// ReasonReconnect is the reason of the PurgeAll that ends a gap. When
// two PurgeAlls merge, this reason is kept, so a subscriber waiting for
// the end of a gap always sees it.
const ReasonReconnect = "reconnect"

// keptRing is the largest ring a drained queue keeps.
const keptRing = 1024

// itemOverhead is what a queued item is charged beyond Config.Size: the
// ring slot and the headers of what it points to.
const itemOverhead = 64

// Budget bounds the bytes queued by every queue of one backend. A nil
// *Budget bounds nothing. It is safe for concurrent use.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// NewBudget returns a budget of limit bytes; limit <= 0 means no bound.
func NewBudget(limit int64) *Budget {
	if limit <= 0 {
		return nil
	}
	return &Budget{limit: limit}
}

// Used returns the bytes queued now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Limit returns the budget's bound, 0 for none.
func (b *Budget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}

func (b *Budget) take(n int64) bool {
	if b == nil {
		return true
	}
	if b.used.Add(n) > b.limit {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *Budget) give(n int64) {
	if b != nil && n != 0 {
		b.used.Add(-n)
	}
}

// Config describes a queue.
type Config[T any] struct {
	// Limit is the most items queued (at least 1).
	Limit int
	// Handler is called with each item, one at a time.
	Handler func(T)
	// Size returns the bytes an item holds; nil charges only the
	// per-item overhead.
	Size func(T) int
	// Control makes a control item; nil for a queue without them
	// (events): a full queue then only drops.
	Control func(c Control, reason string) T
	// Gaps delivers Gap notices (asked for by the subscriber).
	Gaps bool
	// Budget is the backend's byte budget; nil for none.
	Budget *Budget
	// Dropped, Purges and Panics are the counters to raise; any may be
	// nil.
	Dropped, Purges, Panics *atomic.Uint64
	// OnPanic is told of a recovered panic; may be nil.
	OnPanic func(any)
	// OnExit runs on the goroutine when it ends, before Done closes; may
	// be nil.
	OnExit func()
}

// item is one queued item: a value, or a control item made when it is
// delivered.
type item[T any] struct {
	v      T
	ctl    Control
	reason string
	size   int64
}

// Queue is one subscription's queue and goroutine. It is safe for
// concurrent use; Push is meant to be called from one goroutine at a
// time per source, to keep that source's order.
//
// A push that finds the goroutine parked on an empty queue hands the
// item over through a channel, which wakes it; pushes that find it
// running add to the ring under the mutex and do nothing more, but yield
// the processor at a few points past half full (see yieldLocked). The ring
// grows on demand and is released once drained if it grew past 1024.
type Queue[T any] struct {
	cfg Config[T]

	mu      sync.Mutex
	ring    []item[T] // ring[head], ring[head+1], ... (mod len), n of them
	head, n int
	bytes   int64 // charged to the budget by the queued items
	idle    bool  // the ring is empty and the goroutine parked on hand (or about to be)
	stopped bool
	halted  atomic.Bool // stopped, for the goroutine to read without mu
	hand    chan item[T]
	done    chan struct{}

	stopCtx func() bool
}

// New returns a queue; [Queue.Start] runs it.
func New[T any](cfg Config[T]) *Queue[T] {
	cfg.Limit = max(cfg.Limit, 1)
	return &Queue[T]{
		cfg:  cfg,
		hand: make(chan item[T], 1),
		done: make(chan struct{}),
	}
}

// Limit returns the queue's length.
func (q *Queue[T]) Limit() int { return q.cfg.Limit }

// Start runs the delivery goroutine, owned by wg, and ends the queue
// when ctx ends.
func (q *Queue[T]) Start(ctx context.Context, wg *sync.WaitGroup) {
	wg.Go(q.run)
	stop := context.AfterFunc(ctx, q.Unsubscribe)
	q.mu.Lock()
	if q.stopped { // unsubscribed already: nothing to wait for
		q.mu.Unlock()
		stop()
		return
	}
	q.stopCtx = stop
	q.mu.Unlock()
}

// handLocked hands it to the goroutine when it is parked on an empty
// ring, and reports whether it did; it unlocks q.mu then. q.mu is held.
func (q *Queue[T]) handLocked(it item[T]) bool {
	if !q.idle {
		return false
	}
	q.idle = false
	q.mu.Unlock()
	q.hand <- it // never blocks: one item per park, taken before the next
	return true
}

// Push queues v and reports whether it did. On a full queue or an
// exhausted budget v is dropped and counted and, for a queue with
// control items, a PurgeAll "overflow" is queued behind what is queued.
func (q *Queue[T]) Push(v T) bool {
	size := 0
	if q.cfg.Size != nil {
		size = q.cfg.Size(v)
	}
	return q.PushSized(v, size)
}

// PushSized is Push for an item that holds size bytes (instead of what
// Config.Size says).
func (q *Queue[T]) PushSized(v T, size int) bool {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return false
	}
	if q.handLocked(item[T]{v: v}) {
		return true
	}
	charge := int64(itemOverhead + size)
	if q.n >= q.cfg.Limit || !q.cfg.Budget.take(charge) {
		if q.cfg.Dropped != nil {
			q.cfg.Dropped.Add(1)
		}
		if q.cfg.Control != nil {
			q.queuePurgeLocked("overflow")
		}
		q.mu.Unlock()
		return false
	}
	q.bytes += charge
	q.appendLocked(item[T]{v: v, size: charge})
	yield := q.yieldLocked()
	q.mu.Unlock()
	if yield {
		runtime.Gosched()
	}
	return true
}

// yieldLocked reports whether the pusher should yield its processor
// after the push that brought the queue to q.n items: once the queue is
// half full, and again every eighth of its length beyond. A source that
// never blocks (a subscriber connection's reader with a backlog in its
// buffer) otherwise keeps the handler's goroutine, made runnable by the
// first push, from running until the scheduler preempts the source, and
// a burst of more than the queue's length in that time overflows a
// queue whose handler keeps up. Yielding never waits for the handler: a
// blocked handler fills the queue past the last point, and the pushes
// after that are dropped at once. q.mu is held.
func (q *Queue[T]) yieldLocked() bool {
	half := max(q.cfg.Limit/2, 1)
	step := max(q.cfg.Limit/8, 1)
	return q.n >= half && (q.n-half)%step == 0
}

// Purge queues a PurgeAll with reason behind what is queued, even on a
// full queue. A queue without control items ignores it.
func (q *Queue[T]) Purge(reason string) {
	if q.cfg.Control == nil {
		return
	}
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return
	}
	if q.handLocked(item[T]{ctl: Purge, reason: reason}) {
		return
	}
	q.queuePurgeLocked(reason)
	q.mu.Unlock()
}

// Gap queues a Gap notice when the subscriber asked for them: ahead of
// what is queued, but behind the last PurgeAll [ReasonReconnect] queued
// (which ends an earlier gap), and only when no Gap is queued after that
// one already.
func (q *Queue[T]) Gap(reason string) {
	if q.cfg.Control == nil || !q.cfg.Gaps {
		return
	}
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return
	}
	it := item[T]{ctl: Gap, reason: reason}
	if q.handLocked(it) {
		return
	}
	pos := 0 // where it goes, counted from the head
	for k := q.n - 1; k >= 0; k-- {
		c := &q.ring[q.index(k)]
		if c.ctl == Gap {
			q.mu.Unlock()
			return
		}
		if c.ctl == Purge && c.reason == ReasonReconnect {
			pos = k + 1
			break
		}
	}
	q.appendLocked(it)
	for k := q.n - 1; k > pos; k-- {
		i, j := q.index(k), q.index(k-1)
		q.ring[i], q.ring[j] = q.ring[j], q.ring[i]
	}
	q.mu.Unlock()
}

// index returns the ring index of the k-th queued item.
func (q *Queue[T]) index(k int) int {
	i := q.head + k
	if i >= len(q.ring) {
		i -= len(q.ring)
	}
	return i
}

// queuePurgeLocked appends a PurgeAll unless the last item queued is one
// (it covers everything before its delivery), even to a full queue; a
// merged PurgeAll keeps ReasonReconnect.
func (q *Queue[T]) queuePurgeLocked(reason string) {
	if q.n > 0 {
		i := q.head + q.n - 1
		if i >= len(q.ring) {
			i -= len(q.ring)
		}
		if last := &q.ring[i]; last.ctl == Purge {
			if reason == ReasonReconnect {
				last.reason = reason
			}
			return
		}
	}
	q.appendLocked(item[T]{ctl: Purge, reason: reason})
}

// appendLocked appends it, growing the ring when it is full.
func (q *Queue[T]) appendLocked(it item[T]) {
	if q.n == len(q.ring) {
		q.growLocked()
	}
	i := q.head + q.n
	if i >= len(q.ring) {
		i -= len(q.ring)
	}
	q.ring[i] = it
	q.n++
}

// growLocked makes the ring larger: by doubling, up to the most the queue
// can hold (its limit, a PurgeAll and a gap notice).
func (q *Queue[T]) growLocked() {
	size := max(min(2*len(q.ring), q.cfg.Limit+2), 8, q.n+1)
	ring := make([]item[T], size)
	k := copy(ring, q.ring[q.head:])
	copy(ring[k:], q.ring[:q.head])
	q.ring, q.head = ring, 0
}

// next takes the first item, parking the goroutine while the queue is
// empty; ok is false once the queue has stopped.
func (q *Queue[T]) next() (it item[T], ok bool) {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return it, false
	}
	if q.n == 0 {
		q.idle = true
		q.mu.Unlock()
		it = <-q.hand
		return it, !q.halted.Load()
	}
	it, q.ring[q.head] = q.ring[q.head], item[T]{}
	q.head++
	if q.head == len(q.ring) {
		q.head = 0
	}
	q.n--
	q.bytes -= it.size
	if q.n == 0 && len(q.ring) > keptRing {
		q.ring, q.head = nil, 0 // a flood is over: give its memory back
	}
	q.mu.Unlock()
	q.cfg.Budget.give(it.size)
	return it, true
}

func (q *Queue[T]) run() {
	defer close(q.done)
	if q.cfg.OnExit != nil {
		defer q.cfg.OnExit()
	}
	for {
		it, ok := q.next()
		if !ok {
			return
		}
		v := it.v
		if it.ctl != 0 {
			v = q.cfg.Control(it.ctl, it.reason)
			if it.ctl == Purge && q.cfg.Purges != nil {
				q.cfg.Purges.Add(1)
			}
		}
		q.call(v)
	}
}

func (q *Queue[T]) call(v T) {
	defer func() {
		if r := recover(); r != nil {
			if q.cfg.Panics != nil {
				q.cfg.Panics.Add(1)
			}
			if q.cfg.OnPanic != nil {
				q.cfg.OnPanic(r)
			}
		}
	}()
	q.cfg.Handler(v)
}

// Queued returns the number of items queued and the bytes they are
// charged.
func (q *Queue[T]) Queued() (n int, bytes int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.bytes
}

// Idle reports whether the goroutine is parked on an empty queue.
func (q *Queue[T]) Idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.idle
}

// Unsubscribe ends the queue: the handler is not called again and what
// is queued is dropped (its bytes returned to the budget). It is
// idempotent, safe to call from the handler, and does not wait for a
// running handler: Done tells when it has returned.
func (q *Queue[T]) Unsubscribe() {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return
	}
	q.stopped = true
	q.halted.Store(true)
	freed := q.bytes
	q.ring, q.head, q.n, q.bytes = nil, 0, 0, 0
	wake := q.idle
	q.idle = false
	stop := q.stopCtx
	q.mu.Unlock()
	q.cfg.Budget.give(freed)
	if stop != nil {
		stop()
	}
	if wake {
		q.hand <- item[T]{} // never blocks: nothing was handed since the goroutine parked
	}
}

// Done returns a channel closed when the queue has ended and its handler
// is no longer running.
func (q *Queue[T]) Done() <-chan struct{} { return q.done }

// Limiter runs fire at most once per interval: a Hit within an interval
// of the last fire is remembered and fires once when the interval ends,
// so the last hit is always followed by a fire. It is safe for concurrent
// use.
type Limiter struct {
	every time.Duration
	fire  func()

	mu      sync.Mutex
	next    time.Time // no fire before then
	timer   *time.Timer
	stopped bool
}

// NewLimiter returns a Limiter that calls fire at most once per every.
func NewLimiter(every time.Duration, fire func()) *Limiter {
	return &Limiter{every: every, fire: fire}
}

// Hit asks for a fire: now if the interval since the last one has passed,
// otherwise once it has.
func (l *Limiter) Hit() {
	l.mu.Lock()
	if l.stopped || l.timer != nil {
		l.mu.Unlock()
		return
	}
	now := time.Now()
	if !now.Before(l.next) {
		l.next = now.Add(l.every)
		l.mu.Unlock()
		l.fire()
		return
	}
	l.timer = time.AfterFunc(l.next.Sub(now), func() {
		l.mu.Lock()
		l.timer = nil
		if l.stopped {
			l.mu.Unlock()
			return
		}
		l.next = time.Now().Add(l.every)
		l.mu.Unlock()
		l.fire()
	})
	l.mu.Unlock()
}

// Stop cancels a pending fire; later hits do nothing.
func (l *Limiter) Stop() {
	l.mu.Lock()
	l.stopped = true
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	l.mu.Unlock()
}

// Wait waits until the queues' goroutines (counted by wg) have returned
// or ctx ends; it returns ctx's error then. The goroutines go on, each
// ending when its handler returns.
func Wait(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
