package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// ClockSkewer is an optional fault hook of a Harness (not a capability):
// it shifts one instance's own clock by d, as a process on a machine whose
// clock is off. Rate limit decisions must not change, since they read the
// backend's one clock. The ServerClockOnly case runs only on a harness
// that implements it.
type ClockSkewer interface {
	SkewClock(t *testing.T, instance coord.Backend, d time.Duration)
}

// RunRateLimiter runs the cases about [coord.RateLimiter] and
// [coord.WaitRate].
func RunRateLimiter(t *testing.T, maker HarnessMaker) {
	t.Helper()
	runCases(t, maker, rateLimiterCases())
}

func rateLimiterCases() []testCase {
	return []testCase{
		{name: "BurstThenSpaced", run: testRateBurstThenSpaced},
		{name: "RetryAfterExact", run: testRateRetryAfterExact},
		{name: "RemainingCounts", run: testRateRemainingCounts},
		{name: "AllOrNothing", run: testRateAllOrNothing},
		{name: "PeekRecordsNothing", run: testRatePeekRecordsNothing},
		{name: "SharedAcrossInstances", serial: true, run: testRateSharedAcrossInstances},
		{name: "WindowNeverExceeded", serial: true, run: testRateWindowNeverExceeded},
		{name: "KeysIndependent", run: testRateKeysIndependent},
		{name: "Reset", run: testRateReset},
		{name: "StateExpires", run: testRateStateExpires},
		{name: "WaitHonoursDeadline", run: testRateWaitHonoursDeadline},
		{name: "ServerClockOnly", run: testRateServerClockOnly},
		{name: "NeverAllowsOnError", needs: capRestart, run: testRateNeverAllowsOnError},
		{name: "BadInput", run: testRateBadInput},
		{name: "Closed", run: testRateClosed},
	}
}

// rateTolerance is how far a RetryAfter or ResetAfter may be from the one
// the test computes, beyond the time the calls took: the microsecond
// rounding of the interval, and the clock of the server against the
// test's.
const rateTolerance = 2 * time.Millisecond

// allow calls Allow and fails t on an error or an allowed decision with an
// error.
func allow(t *testing.T, b coord.Backend, key string, l coord.Limit, n int) coord.RateDecision {
	t.Helper()
	d, err := b.RateLimiter().Allow(ctxOf(t), key, l, n)
	if err != nil {
		t.Fatalf("Allow(%q, %s, %d): %v", key, l, n, err)
	}
	return d
}

func peek(t *testing.T, b coord.Backend, key string, l coord.Limit) coord.RateDecision {
	t.Helper()
	d, err := b.RateLimiter().Peek(ctxOf(t), key, l)
	if err != nil {
		t.Fatalf("Peek(%q, %s): %v", key, l, err)
	}
	return d
}

// testRateBurstThenSpaced: Burst events pass at once, the next waits one
// emission interval, and then events pass one interval apart.
func testRateBurstThenSpaced(t *testing.T, h Harness) {
	requirePrimitive(t, h, RateLimits)
	ins := instances(t, h, 2)
	const interval = time.Second
	l := coord.Limit{Name: "spaced", Rate: 10, Period: 10 * interval, Burst: 5}
	start := time.Now()
	for i := range 5 {
		if d := allow(t, ins[i%2], "k", l, 1); !d.Allowed {
			t.Fatalf("event %d of the burst of 5 denied: %+v", i+1, d)
		}
	}
	d := allow(t, ins[0], "k", l, 1)
	elapsed := time.Since(start)
	if d.Allowed {
		if elapsed < interval {
			t.Fatalf("the 6th event, %v after the first, is allowed: a burst of 5 admits 5", elapsed)
		}
		t.Skipf("the machine stalled %v, an emission interval: nothing left to check", elapsed)
	}
	if d.RetryAfter > interval+rateTolerance || d.RetryAfter < interval-elapsed-rateTolerance {
		t.Fatalf("RetryAfter of the 6th = %v, want %v less the %v the calls took", d.RetryAfter, interval, elapsed)
	}
	hold(ctxOf(t), d.RetryAfter)
	at := time.Now() // before the next decision: an interval after it, the one after may pass
	if d := allow(t, ins[1], "k", l, 1); !d.Allowed {
		t.Fatalf("denied after waiting the RetryAfter: %+v", d)
	}
	d = allow(t, ins[0], "k", l, 1)
	if d.Allowed && time.Since(at) < interval {
		t.Fatalf("two events allowed less than an emission interval apart after the burst")
	}
}

// testRateRetryAfterExact: a denied event is allowed once its RetryAfter
// has passed and not before (measured from outside the calls).
func testRateRetryAfterExact(t *testing.T, h Harness) {
	requirePrimitive(t, h, RateLimits)
	ins := instances(t, h, 2)
	for _, l := range []coord.Limit{
		{Name: "exact", Rate: 1, Period: 400 * time.Millisecond, Burst: 1},
		{Name: "exact", Rate: 1, Period: 400 * time.Millisecond, Window: true},
	} {
		t.Run(fmt.Sprintf("window=%v", l.Window), func(t *testing.T) {
			first := time.Now()
			if d := allow(t, ins[0], "k", l, 1); !d.Allowed {
				t.Fatalf("first event denied: %+v", d)
			}
			d := allow(t, ins[1], "k", l, 1)
			denied := time.Now()
			if d.Allowed {
				if denied.Sub(first) < l.Period {
					t.Fatalf("second event allowed %v after the first, under %s", denied.Sub(first), l)
				}
				t.Skip("the machine stalled a whole period")
			}
			if d.RetryAfter > l.Period+rateTolerance || d.RetryAfter < l.Period-denied.Sub(first)-rateTolerance {
				t.Fatalf("RetryAfter = %v, want %v less the %v the calls took", d.RetryAfter, l.Period, denied.Sub(first))
			}
			// Half way: still denied, unless the test was too slow to tell.
			hold(ctxOf(t), d.RetryAfter/2)
			p := peek(t, ins[0], "k", l)
			if time.Since(first) < d.RetryAfter-rateTolerance && p.Allowed {
				t.Fatalf("allowed %v after the first event, before its RetryAfter %v", time.Since(first), d.RetryAfter)
			}
			if !p.Allowed && (p.RetryAfter > d.RetryAfter || p.RetryAfter <= 0) {
				t.Fatalf("RetryAfter half way = %v, want in (0, %v]", p.RetryAfter, d.RetryAfter)
			}
			hold(ctxOf(t), time.Until(denied.Add(d.RetryAfter)))
			if d := allow(t, ins[0], "k", l, 1); !d.Allowed {
				t.Fatalf("denied once the RetryAfter passed: %+v", d)
			}
		})
	}
}

// testRateRemainingCounts: Remaining counts down with the events taken.
func testRateRemainingCounts(t *testing.T, h Harness) {
	requirePrimitive(t, h, RateLimits)
	ins := instances(t, h, 2)
	for _, l := range []coord.Limit{
		{Rate: 5, Period: 50 * time.Second},
		{Rate: 5, Period: 10 * time.Second, Window: true},
	} {
		if p := peek(t, ins[1], "k", l); !p.Allowed || p.Remaining != 5 || p.ResetAfter != 0 {
			t.Errorf("%s: Peek of a fresh key = %+v, want allowed, Remaining 5, ResetAfter 0", l, p)
		}
		want := []int{4, 2, 1, 0}
		for i, n := range []int{1, 2, 1, 1} {
			d := allow(t, ins[i%2], "k", l, n)
			if !d.Allowed || d.Remaining != want[i] || d.RetryAfter != 0 {
				t.Fatalf("%s: step %d (n=%d) = %+v, want allowed, Remaining %d, RetryAfter 0", l, i, n, d, want[i])
			}
			if d.ResetAfter <= 0 || d.ResetAfter > l.Period+rateTolerance {
				t.Fatalf("%s: ResetAfter %v, want in (0, %v]", l, d.ResetAfter, l.Period)
			}
		}
		d := allow(t, ins[1], "k", l, 1)
		if d.Allowed || d.Remaining != 0 || d.RetryAfter <= 0 {
			t.Fatalf("%s: over the limit = %+v, want denied, Remaining 0, RetryAfter > 0", l, d)
		}
	}
}

// testRateAllOrNothing: n events pass together or not at all, and a denied
// request takes nothing.
func testRateAllOrNothing(t *testing.T, h Harness) {
	requirePrimitive(t, h, RateLimits)
	ins := instances(t, h, 2)
	for _, l := range []coord.Limit{
		{Rate: 5, Period: 50 * time.Second},
		{Rate: 5, Period: 10 * time.Second, Window: true},
	} {
		if d := allow(t, ins[0], "k", l, 3); !d.Allowed || d.Remaining != 2 {
			t.Fatalf("%s: 3 of 5 = %+v, want allowed, Remaining 2", l, d)
		}
		d := allow(t, ins[1], "k", l, 3)
		if d.Allowed || d.Remaining != 2 || d.RetryAfter <= 0 {
			t.Fatalf("%s: 3 more with 2 left = %+v, want denied, Remaining 2, RetryAfter > 0", l, d)
		}
		if d := allow(t, ins[1], "k", l, 2); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("%s: the 2 left after a denial = %+v, want allowed, Remaining 0 (the denial took nothing)", l, d)
		}
	}
}

// testRatePeekRecordsNothing: Peek never takes an event.
func testRatePeekRecordsNothing(t *testing.T, h Harness) {
	requirePrimitive(t, h, RateLimits)
	ins := instances(t, h, 2)
	for _, l := range []coord.Limit{
		{Rate: 2, Period: 50 * time.Second},
		{Rate: 2, Period: 50 * time.Second, Window: true},
	} {
		for range 5 {
			if p := peek(t, ins[0], "k", l); !p.Allowed || p.Remaining != 2 {
				t.Fatalf("%s: Peek = %+v, want allowed, Remaining 2", l, p)
			}
		}
		allow(t, ins[1], "k", l, 2)
		p := peek(t, ins[0], "k", l)
		if p.Allowed || p.Remaining != 0 || p.RetryAfter <= 0 || p.ResetAfter <= 0 {
			t.Fatalf("%s: Peek after the allowance is taken = %+v, want denied, Remaining 0, RetryAfter and ResetAfter > 0", l, p)
		}
	}
}

// testRateSharedAcrossInstances: 3 instances × 16 goroutines share one
// limit: the events allowed stay within burst + rate·elapsed, and reach
// 90 % of what the callers could have been allowed.
//
// The bucket is emptied before the run starts, so what the callers could
// claim is rate·elapsed less the capacity no caller was there to claim:
// the part of any gap between two calls (the machine stalled every
// caller), and of the time before the first call, beyond the burst's
// refill time, when the bucket was full and unclaimed, and the time after
// the last call. A full bucket at the start would be wasted for as long
// as the first decision takes to reach the server, which a loaded machine
// stretches past 100ms (a tenth of the run) while every caller waits for
// it: no gap shows it. And when the callers make fewer calls than that,
// every call is all they could have been allowed.
func testRateSharedAcrossInstances(t *testing.T, h Harness) {
	requirePrimitive(t, h, RateLimits)
	ins := instances(t, h, 3)
	l := coord.Limit{Name: "shared", Rate: 100, Period: time.Second, Burst: 20}
	const run = time.Second
	var allowed, calls atomic.Int64
	var stop atomic.Bool
	var failed atomic.Value
	var wg sync.WaitGroup
	refill := time.Duration(float64(l.Size()) / float64(l.Rate) * float64(l.Period))
	// Empty the bucket: take what it holds, until a decision leaves less
	// than one event (a round trip over an interval refills one).
	for n, round := l.Size(), 0; ; round++ {
		d := allow(t, ins[0], "shared", l, n)
		if !d.Allowed || d.Remaining == 0 || round == 20 {
			break
		}
		n = d.Remaining
	}
	var gapMu sync.Mutex
	var idle time.Duration // capacity unclaimed, in time at the rate
	start := time.Now()    // the bucket is empty
	lastCall := start
	var firstBack atomic.Int64 // when the first decision came back, since start
	called := func() {
		now := time.Now()
		gapMu.Lock()
		defer gapMu.Unlock()
		if g := now.Sub(lastCall); g > refill {
			idle += g - refill
		}
		lastCall = now
	}
	for i := range 3 * 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rl := ins[i%3].RateLimiter()
			for !stop.Load() {
				called()
				d, err := rl.Allow(context.Background(), "shared", l, 1)
				firstBack.CompareAndSwap(0, int64(time.Since(start)))
				calls.Add(1)
				if err != nil {
					failed.Store(err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
				time.Sleep(5 * time.Millisecond) // pacing: 48 callers offer ~100 times the rate
			}
		}()
	}
	hold(ctxOf(t), run)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start) // every allowed decision was made before now
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("Allow: %v", err)
	}
	bound := float64(l.Size()) + float64(l.Rate)*elapsed.Seconds()/l.Period.Seconds()
	gapMu.Lock()
	idle += time.Since(lastCall) // after the last call
	gapMu.Unlock()
	claimable := float64(l.Rate) * (elapsed - idle).Seconds() / l.Period.Seconds()
	n := calls.Load()
	claimable = min(claimable, float64(n))
	got := allowed.Load()
	t.Logf("%d of %d calls allowed in %v; bound %.1f, claimable %.1f (no caller for %v; first decision back after %v)", got, n, elapsed, bound, claimable, idle, time.Duration(firstBack.Load()))
	if float64(got) > bound {
		t.Fatalf("%d events allowed in %v, over burst + rate·elapsed = %.1f", got, elapsed, bound)
	}
	if float64(got) < 0.9*claimable {
		t.Fatalf("%d events allowed in %v, under 90%% of the %.1f the callers could claim (rate·elapsed = %.1f, no caller for %v; %d calls)", got, elapsed, claimable, float64(l.Rate)*elapsed.Seconds()/l.Period.Seconds(), idle, n)
	}
}

// testRateWindowNeverExceeded: under a window limit, no window of length
// Period holds more than Rate allowed events, across instances.
func testRateWindowNeverExceeded(t *testing.T, h Harness) {
	requirePrimitive(t, h, RateLimits)
	ins := instances(t, h, 3)
	l := coord.Limit{Name: "window", Rate: 10, Period: 200 * time.Millisecond, Window: true}
	const run = time.Second
	type span struct{ from, to time.Time } // the decision was made between them
	var mu sync.Mutex
	var spans []span
	var stop atomic.Bool
	var failed atomic.Value
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rl := ins[i%3].RateLimiter()
			for !stop.Load() {
				from := time.Now()
				d, err := rl.Allow(context.Background(), "w", l, 1+i%2)
				to := time.Now()
				if err != nil {
					failed.Store(err)
					return
				}
				if d.Allowed {
					mu.Lock()
					for range 1 + i%2 {
						spans = append(spans, span{from, to})
					}
					mu.Unlock()
				}
				time.Sleep(2 * time.Millisecond) // pacing
			}
		}()
	}
	hold(ctxOf(t), run)
	stop.Store(true)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("Allow: %v", err)
	}
	if len(spans) < l.Rate {
		t.Fatalf("only %d events allowed in %v under %s: the first window alone admits %d", len(spans), run, l, l.Rate)
	}
	// Rate+1 events whose spans all fit within less than a Period were
	// certainly decided within one window.
	slices.SortFunc(spans, func(a, b span) int { return a.from.Compare(b.from) })
	ends := make([]time.Time, 0, len(spans))
	for i, s := range spans {
		ends = ends[:0]
		for _, o := range spans[i:] {
			if o.from.Sub(s.from) >= l.Period {
				break
			}
			ends = append(ends, o.to)
		}
		if len(ends) <= l.Rate {
			continue
		}
		slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
		if last := ends[l.Rate]; last.Sub(s.from) < l.Period {
			t.Fatalf("%d events allowed within %v, in a window of %v under %s", l.Rate+1, last.Sub(s.from), l.Period, l)
		}
	}
	t.Logf("%d events allowed in %v", len(spans), run)
}

// testRateKeysIndependent: keys, unusual ones included, and the two
// algorithms on one key, do not share state.
func testRateKeysIndependent(t *testing.T, h Harness) {
	requirePrimitive(t, h, RateLimits)
	ins := instances(t, h, 2)
	l := coord.Limit{Rate: 1, Period: time.Minute}
	w := coord.Limit{Rate: 1, Period: time.Minute, Window: true}
	for i, key := range goodNames() {
		if d := allow(t, ins[i%2], key, l, 1); !d.Allowed {
			t.Fatalf("first event on %q denied: %+v (another key's state?)", key, d)
		}
	}
	for i, key := range goodNames() {
		if d := allow(t, ins[(i+1)%2], key, l, 1); d.Allowed {
			t.Fatalf("second event on %q allowed: its state was not kept apart", key)
		}
		if d := allow(t, ins[i%2], key, w, 1); !d.Allowed {
			t.Fatalf("window limit on %q denied: it shares the GCRA state", key)
		}
	}
}

// testRateReset: Reset gives a key its full allowance back, under both
// algorithms, and only that key.
func testRateReset(t *testing.T, h Harness) {
	requirePrimitive(t, h, RateLimits)
	ins := instances(t, h, 2)
	l := coord.Limit{Rate: 2, Period: time.Minute}
	w := coord.Limit{Rate: 2, Period: time.Minute, Window: true}
	for _, key := range []string{"a", "b"} {
		allow(t, ins[0], key, l, 2)
		allow(t, ins[0], key, w, 2)
	}
	must(t, ins[1].RateLimiter().Reset(ctxOf(t), "a"), "Reset")
	for _, lim := range []coord.Limit{l, w} {
		if d := allow(t, ins[0], "a", lim, 2); !d.Allowed {
			t.Fatalf("%s: after Reset, %+v, want the full allowance", lim, d)
		}
		if d := allow(t, ins[0], "b", lim, 1); d.Allowed {
			t.Fatalf("%s: Reset of a reset b too", lim)
		}
	}
	must(t, ins[1].RateLimiter().Reset(ctxOf(t), "never-used"), "Reset of an unknown key")
}

// testRateStateExpires: once ResetAfter has passed the key is back to its
// full allowance, as if it had never been used.
func testRateStateExpires(t *testing.T, h Harness) {
	requirePrimitive(t, h, RateLimits)
	ins := instances(t, h, 2)
	for _, l := range []coord.Limit{
		{Rate: 10, Period: time.Second, Burst: 2},
		{Rate: 2, Period: 200 * time.Millisecond, Window: true},
	} {
		allow(t, ins[0], "k", l, 1)
		d := allow(t, ins[0], "k", l, 1)
		if d.ResetAfter <= 0 || d.ResetAfter > 200*time.Millisecond+rateTolerance {
			t.Fatalf("%s: ResetAfter = %v, want in (0, 200ms]", l, d.ResetAfter)
		}
		hold(ctxOf(t), d.ResetAfter)
		if p := peek(t, ins[1], "k", l); !p.Allowed || p.Remaining != l.Size() || p.ResetAfter != 0 {
			t.Fatalf("%s: after ResetAfter, Peek = %+v, want allowed, Remaining %d, ResetAfter 0", l, p, l.Size())
		}
	}
}

// testRateWaitHonoursDeadline: WaitRate returns at once when the deadline
// comes before the retry time, waits when it does not, and ends with its
// ctx.
func testRateWaitHonoursDeadline(t *testing.T, h Harness) {
	requirePrimitive(t, h, RateLimits)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	far := coord.Limit{Rate: 1, Period: time.Hour}
	allow(t, ins[0], "far", far, 1)
	ctx, cancel := context.WithTimeout(ctxOf(t), tm.retry)
	start := time.Now()
	err := coord.WaitRate(ctx, ins[1].RateLimiter(), "far", far, 1)
	cancel()
	if !errors.Is(err, coord.ErrRateLimited) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitRate with a deadline before the retry time = %v, want ErrRateLimited and DeadlineExceeded", err)
	}
	if took := time.Since(start); took > tm.prompt {
		t.Fatalf("WaitRate took %v to see its deadline comes first, want at once (under %v)", took, tm.prompt)
	}

	near := coord.Limit{Rate: 1, Period: 200 * time.Millisecond}
	start = time.Now()
	allow(t, ins[0], "near", near, 1)
	ctx, cancel = context.WithTimeout(ctxOf(t), tm.guard)
	err = coord.WaitRate(ctx, ins[1].RateLimiter(), "near", near, 1)
	cancel()
	must(t, err, "WaitRate with time enough")
	if took := time.Since(start); took < near.Period-rateTolerance {
		t.Fatalf("WaitRate took the second event %v after the first, under %s", took, near)
	}
	if p := peek(t, ins[0], "near", near); p.Allowed {
		t.Fatalf("WaitRate returned nil without taking the event: %+v", p)
	}

	ctx, cancel = context.WithCancel(ctxOf(t))
	done := make(chan error, 1)
	go func() { done <- coord.WaitRate(ctx, ins[1].RateLimiter(), "far", far, 1) }()
	hold(ctxOf(t), tm.settle)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, coord.ErrRateLimited) || !errors.Is(err, context.Canceled) {
			t.Fatalf("WaitRate ended by cancel = %v, want ErrRateLimited and Canceled", err)
		}
	case <-time.After(tm.cancel):
		t.Fatalf("WaitRate still waiting %v after its ctx ended", tm.cancel)
	}
}

// testRateServerClockOnly: instances whose own clocks are hours apart
// make the same decisions, on the backend's clock.
func testRateServerClockOnly(t *testing.T, h Harness) {
	requirePrimitive(t, h, RateLimits)
	sk, ok := h.(ClockSkewer)
	if !ok {
		t.Skip("the harness cannot skew an instance's clock (ClockSkewer)")
	}
	ins := instances(t, h, 3)
	sk.SkewClock(t, ins[0], time.Hour)
	sk.SkewClock(t, ins[1], -time.Hour)
	for _, l := range []coord.Limit{
		{Rate: 3, Period: time.Minute},
		{Rate: 3, Period: time.Minute, Window: true},
	} {
		for i := range 3 {
			if d := allow(t, ins[i%2], "k", l, 1); !d.Allowed || d.Remaining != 2-i {
				t.Fatalf("%s: event %d on skewed instances = %+v, want allowed, Remaining %d", l, i+1, d, 2-i)
			}
		}
		for i, b := range ins {
			d := allow(t, b, "k", l, 1)
			most := l.Period / 3 // the emission interval
			if l.Window {
				most = l.Period
			}
			if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > most+rateTolerance {
				t.Fatalf("%s: instance %d (clock skewed) decided %+v, want denied with a RetryAfter within the period", l, i, d)
			}
		}
	}
}

// testRateNeverAllowsOnError: while the server restarts, a decision is an
// allowed one with no error or an error that wraps ErrUnavailable, never
// both; the limiter works again once the server is back.
func testRateNeverAllowsOnError(t *testing.T, h Harness) {
	requirePrimitive(t, h, RateLimits)
	tm := timingOf(h)
	r := h.(Restarter)
	ins := instances(t, h, 2)
	l := coord.Limit{Rate: 1000, Period: time.Second}
	var stop atomic.Bool
	var errs, allowed atomic.Int64
	var bad atomic.Value
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				// A short deadline, so that calls made while the server
				// is down end in errors rather than wait it out.
				ctx, cancel := context.WithTimeout(context.Background(), tm.poll)
				d, err := ins[i%2].RateLimiter().Allow(ctx, "k", l, 1)
				cancel()
				switch {
				case err != nil && d.Allowed:
					bad.Store(fmt.Sprintf("an allowed decision with the error %v", err))
				case err != nil && !errors.Is(err, coord.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded):
					bad.Store(fmt.Sprintf("error %v, want one wrapping ErrUnavailable", err))
				case err != nil:
					errs.Add(1)
				case d.Allowed:
					allowed.Add(1)
				}
				time.Sleep(time.Millisecond) // pacing
			}
		}()
	}
	r.Restart(t)
	retrying(t, tm.restart, func() bool {
		_, err := ins[0].RateLimiter().Allow(ctxOf(t), "after", l, 1)
		return err == nil
	}, "Allow still failing after the restart")
	stop.Store(true)
	wg.Wait()
	if msg, _ := bad.Load().(string); msg != "" {
		t.Fatal(msg)
	}
	t.Logf("during the restart: %d allowed, %d errors", allowed.Load(), errs.Load())
}

// testRateBadInput: impossible requests are ErrInvalid and store nothing.
func testRateBadInput(t *testing.T, h Harness) {
	requirePrimitive(t, h, RateLimits)
	b := instances(t, h, 1)[0]
	rl := b.RateLimiter()
	good := coord.Limit{Rate: 2, Period: time.Minute}
	cases := map[string]struct {
		l coord.Limit
		n int
	}{
		"n 0":                 {good, 0},
		"n negative":          {good, -1},
		"n over burst":        {coord.Limit{Rate: 10, Period: time.Minute, Burst: 3}, 4},
		"n over rate":         {good, 3},
		"n over window":       {coord.Limit{Rate: 2, Period: time.Minute, Window: true}, 3},
		"rate 0":              {coord.Limit{Rate: 0, Period: time.Minute}, 1},
		"rate negative":       {coord.Limit{Rate: -5, Period: time.Minute}, 1},
		"period 0":            {coord.Limit{Rate: 2}, 1},
		"period negative":     {coord.Limit{Rate: 2, Period: -time.Second}, 1},
		"period under 1ms":    {coord.Limit{Rate: 1, Period: time.Microsecond}, 1},
		"burst negative":      {coord.Limit{Rate: 2, Period: time.Minute, Burst: -1}, 1},
		"over one per µs":     {coord.Limit{Rate: 2000, Period: time.Millisecond}, 1},
		"window with burst":   {coord.Limit{Rate: 2, Period: time.Minute, Burst: 2, Window: true}, 1},
		"window rate too big": {coord.Limit{Rate: coord.MaxWindowRate + 1, Period: time.Hour, Window: true}, 1},
	}
	for name, c := range cases {
		d, err := rl.Allow(ctxOf(t), "k", c.l, c.n)
		if !errors.Is(err, coord.ErrInvalid) || d.Allowed {
			t.Errorf("%s: Allow = %+v, %v; want ErrInvalid, not allowed", name, d, err)
		}
	}
	for name, key := range badNames() {
		if _, err := rl.Allow(ctxOf(t), key, good, 1); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("Allow with key %s = %v, want ErrInvalid", name, err)
		}
		if _, err := rl.Peek(ctxOf(t), key, good); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("Peek with key %s = %v, want ErrInvalid", name, err)
		}
		if err := rl.Reset(ctxOf(t), key); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("Reset with key %s = %v, want ErrInvalid", name, err)
		}
	}
	if p := peek(t, b, "k", good); !p.Allowed || p.Remaining != 2 {
		t.Errorf("after the refused requests, Peek = %+v, want the full allowance (nothing stored)", p)
	}
}

// testRateClosed: after Close every method fails with ErrClosed, never
// allows.
func testRateClosed(t *testing.T, h Harness) {
	requirePrimitive(t, h, RateLimits)
	b := instances(t, h, 1)[0]
	rl := b.RateLimiter()
	must(t, b.Close(ctxOf(t)), "Close")
	l := coord.Limit{Rate: 2, Period: time.Minute}
	if d, err := rl.Allow(ctxOf(t), "k", l, 1); !errors.Is(err, coord.ErrClosed) || d.Allowed {
		t.Errorf("Allow after Close = %+v, %v; want ErrClosed, not allowed", d, err)
	}
	if _, err := b.RateLimiter().Peek(ctxOf(t), "k", l); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("Peek after Close = %v, want ErrClosed", err)
	}
	if err := rl.Reset(ctxOf(t), "k"); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("Reset after Close = %v, want ErrClosed", err)
	}
}
