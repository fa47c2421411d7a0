package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

// RateLimiter is a node's view of the rate limits its hub keeps: every
// node of a hub shares them, as every instance shares a Redis server.
// Decisions read the hub's monotonic clock, never a node's clock (see
// [Backend.SkewClock]).
type RateLimiter struct{ n *Backend }

var _ coord.RateLimiter = RateLimiter{}

// rateStore is the hub's rate limit state: a GCRA TAT per key and a
// sliding window log per key, each forgotten lazily once it no longer
// matters. Its zero value is ready.
type rateStore struct {
	mu     sync.Mutex
	base   time.Time // the clock's origin, set by the first decision
	gcra   map[string]gcraState
	window map[string]*windowLog
	// sweepAt is the size of the maps at which the next insert sweeps
	// out expired state: the work of a sweep is paid by the inserts that
	// doubled the maps since the last one.
	sweepAt int
}

type gcraState struct{ tat int64 }

// windowLog holds the times of the events in a key's window, oldest
// first, as runs of events at the same microsecond.
type windowLog struct {
	runs   []windowRun
	head   int   // runs[head:] are live
	count  int   // events in runs[head:]
	period int64 // the period of the last decision, for the sweep
}

type windowRun struct {
	at int64
	n  int
}

const minSweep = 1024

// now returns the hub clock in microseconds since its origin, always ≥ 1
// (0 means "no state"). s.mu must be held.
func (s *rateStore) nowLocked() int64 {
	if s.base.IsZero() {
		s.base = time.Now()
		s.gcra = make(map[string]gcraState)
		s.window = make(map[string]*windowLog)
		s.sweepAt = minSweep
	}
	return int64(time.Since(s.base)/time.Microsecond) + 1
}

// restart forgets every state, as a Redis without persistence does.
func (s *rateStore) restart() {
	s.mu.Lock()
	clear(s.gcra)
	clear(s.window)
	s.mu.Unlock()
}

// sweepLocked forgets expired state when the maps have grown enough.
func (s *rateStore) sweepLocked(now int64) {
	if len(s.gcra)+len(s.window) < s.sweepAt {
		return
	}
	for k, st := range s.gcra {
		if st.tat <= now {
			delete(s.gcra, k)
		}
	}
	for k, w := range s.window {
		if w.newest()+w.period <= now {
			delete(s.window, k)
		}
	}
	s.sweepAt = max(minSweep, 2*(len(s.gcra)+len(s.window)))
}

func (w *windowLog) newest() int64 {
	if w.head == len(w.runs) {
		return 0
	}
	return w.runs[len(w.runs)-1].at
}

// trim drops the events at or before cutoff.
func (w *windowLog) trim(cutoff int64) {
	for w.head < len(w.runs) && w.runs[w.head].at <= cutoff {
		w.count -= w.runs[w.head].n
		w.head++
	}
	if w.head == len(w.runs) {
		w.runs, w.head = w.runs[:0], 0
	}
}

func (w *windowLog) add(at int64, n int) {
	if last := len(w.runs) - 1; last >= w.head && w.runs[last].at == at {
		w.runs[last].n += n
	} else {
		if len(w.runs) == cap(w.runs) && w.head > 0 {
			m := copy(w.runs, w.runs[w.head:])
			w.runs, w.head = w.runs[:m], 0
		}
		w.runs = append(w.runs, windowRun{at: at, n: n})
	}
	w.count += n
}

// retryAfter returns how long until n more events fit under rate: until
// the event that must leave the window for them leaves it.
func (w *windowLog) retryAfter(now, period int64, rate, n int) int64 {
	need := w.count + n - rate
	for i := w.head; i < len(w.runs); i++ {
		need -= w.runs[i].n
		if need <= 0 {
			return w.runs[i].at + period - now
		}
	}
	return period // unreachable for a valid n
}

func (s *rateStore) decideWindow(now int64, key string, limit coord.Limit, n int, record bool) coord.RateDecision {
	period := limit.PeriodMicros()
	w := s.window[key]
	if w != nil {
		w.trim(now - period)
	}
	count := 0
	if w != nil {
		count = w.count
	}
	// A window over a lower limit than the one that filled it holds more
	// than Rate: nothing remains, not a negative count.
	d := coord.RateDecision{Allowed: count+n <= limit.Rate, Remaining: max(limit.Rate-count, 0)}
	if !d.Allowed {
		d.RetryAfter = micros(w.retryAfter(now, period, limit.Rate, n))
	} else if record {
		if w == nil {
			s.sweepLocked(now)
			w = &windowLog{}
			s.window[key] = w
		}
		w.add(now, n)
		w.period = period
		d.Remaining -= n
	}
	if w != nil && w.count > 0 {
		d.ResetAfter = micros(w.newest() + period - now)
	}
	return d
}

func (s *rateStore) decide(key string, limit coord.Limit, n int, record bool) coord.RateDecision {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	if limit.Window {
		return s.decideWindow(now, key, limit, n, record)
	}
	st, ok := s.gcra[key]
	d, tat := driver.GCRA(now, st.tat, limit, n, record)
	if tat != st.tat && tat > now {
		if !ok {
			s.sweepLocked(now)
		}
		s.gcra[key] = gcraState{tat: tat}
	}
	return d
}

func micros(us int64) time.Duration { return time.Duration(us) * time.Microsecond }

func (rl RateLimiter) check(key string, limit coord.Limit, n int) error {
	if err := driver.ValidateName("rate key", key); err != nil {
		return err
	}
	if err := limit.Validate(n); err != nil {
		return err
	}
	if rl.n.closed.Load() {
		return errClosed("rate limit")
	}
	return nil
}

// Allow records n events on key if limit allows all n now, on the hub's
// clock. See [coord.RateLimiter].
func (rl RateLimiter) Allow(ctx context.Context, key string, limit coord.Limit, n int) (coord.RateDecision, error) {
	if err := rl.check(key, limit, n); err != nil {
		return coord.RateDecision{}, err
	}
	if err := ctx.Err(); err != nil {
		return coord.RateDecision{}, fmt.Errorf("coord/memory: rate limit: %w", err)
	}
	return rl.n.hub.rates.decide(key, limit, n, true), nil
}

// Peek reports key's state under limit without recording anything. See
// [coord.RateLimiter].
func (rl RateLimiter) Peek(ctx context.Context, key string, limit coord.Limit) (coord.RateDecision, error) {
	if err := rl.check(key, limit, 1); err != nil {
		return coord.RateDecision{}, err
	}
	if err := ctx.Err(); err != nil {
		return coord.RateDecision{}, fmt.Errorf("coord/memory: rate limit: %w", err)
	}
	return rl.n.hub.rates.decide(key, limit, 1, false), nil
}

// Reset forgets key's history under both algorithms.
func (rl RateLimiter) Reset(ctx context.Context, key string) error {
	if err := driver.ValidateName("rate key", key); err != nil {
		return err
	}
	if rl.n.closed.Load() {
		return errClosed("rate limit")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("coord/memory: rate limit: %w", err)
	}
	s := &rl.n.hub.rates
	s.mu.Lock()
	delete(s.gcra, key)
	delete(s.window, key)
	s.mu.Unlock()
	return nil
}

// SkewClock is a fault hook for tests: it shifts the node's own wall
// clock by d, the clock that stamps the invalidations and events the node
// sends, as an instance's clock can be off on another machine. Decisions
// that must agree across nodes (rate limits, lease expiry) read the hub's
// clock and do not change.
func (n *Backend) SkewClock(d time.Duration) { n.skew.Store(int64(d)) }

// clockMilli is the node's own wall clock, to the millisecond.
func (n *Backend) clockMilli() time.Time {
	return time.UnixMilli(time.Now().Add(time.Duration(n.skew.Load())).UnixMilli())
}
