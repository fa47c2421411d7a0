package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// RunJobs runs the cases about [coord.Jobs], [coord.RunEvery] and the
// lease [coord.WithLock] gives its function ([coord.LockFromContext]).
func RunJobs(t *testing.T, maker HarnessMaker) {
	t.Helper()
	runCases(t, maker, jobCases())
}

func jobCases() []testCase {
	cases := []testCase{
		{name: "OncePerPeriodSkewedStarts", serial: true, run: testJobOncePerPeriod},
		{name: "RunsAgainAfterRunnerClosed", serial: true, run: testJobRunnerClosed},
		{name: "RunsAgainAfterLeaseForceReleased", serial: true, run: testJobLeaseForced},
		{name: "FailingRunRetriedInPeriod", run: testJobRetried},
		{name: "FailingRunNeverDone", run: testJobNeverDone},
		{name: "DueReportsPeriodAndNext", run: testJobDue},
		{name: "CompleteSharedAndMonotonic", run: testJobCompleteMonotonic},
		{name: "FailCountsPerPeriod", run: testJobFailCounts},
		{name: "RunEveryGivesLeaseAndSlot", run: testJobContext},
		{name: "WithLockGivesLease", run: testWithLockGivesLease},
		{name: "BadInput", run: testJobBadInput},
	}
	for i := range cases {
		if cases[i].name == "WithLockGivesLease" {
			continue // a Locker case: every backend has one
		}
		run := cases[i].run
		cases[i].run = func(t *testing.T, h Harness) {
			requirePrimitive(t, h, Jobs)
			run(t, h)
		}
	}
	return cases
}

// jobSteady is a period long enough that no case sees it end (about
// four days, aligned on nothing in particular).
const jobSteady = 97*time.Hour + 13*time.Second

// jobPeriod is the short period of the cases that watch periods pass: half
// a lease of the timing table (200ms at a granularity of 1ms).
func jobPeriod(tm timing) time.Duration { return tm.lease / 2 }

// runJob starts RunEvery on b until the test ends (or stop is called) and
// returns stop, which waits for it and returns its error.
func runJob(t *testing.T, b coord.Backend, job string, period time.Duration, fn func(context.Context) error, opts ...coord.JobOption) (stop func() error) {
	t.Helper()
	stop, _ = runJobDone(t, b, job, period, fn, opts...)
	return stop
}

// runJobDone is runJob that also returns a channel closed when RunEvery
// returns by itself.
func runJobDone(t *testing.T, b coord.Backend, job string, period time.Duration, fn func(context.Context) error, opts ...coord.JobOption) (stop func() error, done <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctxOf(t))
	var err error
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		err = coord.RunEvery(ctx, b, job, period, fn, opts...)
	}()
	var once sync.Once
	stop = func() error {
		once.Do(func() { cancel(); <-ended })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop, ended
}

// jobRuns records the runs of a job: the period of each and who ran it.
type jobRuns struct {
	mu   sync.Mutex
	runs []jobRun
}

type jobRun struct {
	index int64
	by    int
	fence int64
}

func (r *jobRuns) fn(by int) func(context.Context) error {
	return func(ctx context.Context) error {
		slot, ok := coord.JobSlotFromContext(ctx)
		if !ok {
			return errors.New("fn's ctx carries no slot")
		}
		var fence int64
		if l, ok := coord.LockFromContext(ctx); ok {
			fence = l.Fence()
		}
		r.mu.Lock()
		r.runs = append(r.runs, jobRun{index: slot.Index, by: by, fence: fence})
		r.mu.Unlock()
		return nil
	}
}

func (r *jobRuns) all() []jobRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]jobRun(nil), r.runs...)
}

func testJobOncePerPeriod(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	period := jobPeriod(tm)
	const periods = 5
	// Three instances whose schedules start a few milliseconds apart, as
	// tickers out of phase would.
	var runs jobRuns
	var stops []func() error
	for i, b := range ins {
		if i > 0 {
			hold(ctxOf(t), time.Duration(3+4*i)*time.Millisecond)
		}
		stops = append(stops, runJob(t, b, "once", period, runs.fn(i), coord.WithJobTTL(tm.renewed)))
	}
	first := time.Now()
	hold(ctxOf(t), periods*period+period/2)
	for i, stop := range stops {
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("RunEvery on instance %d returned %v, want context.Canceled", i, err)
		}
	}
	all := runs.all()
	byIndex := map[int64][]jobRun{}
	lo, hi := int64(-1), int64(-1)
	for _, r := range all {
		byIndex[r.index] = append(byIndex[r.index], r)
		if lo < 0 || r.index < lo {
			lo = r.index
		}
		hi = max(hi, r.index)
	}
	for idx, rs := range byIndex {
		if len(rs) > 1 {
			t.Errorf("period %d ran %d times: %+v", idx, len(rs), rs)
		}
	}
	// A loaded 2-core machine may sleep through one period of 200ms; a
	// schedule that does not work misses most of them.
	if len(byIndex) < periods-1 {
		t.Errorf("the job ran in %d periods (%d to %d) in %v of periods of %v, want at least %d: %+v",
			len(byIndex), lo, hi, time.Since(first), period, periods-1, all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].fence <= all[i-1].fence {
			t.Errorf("run %d had fence %d, not above the previous run's %d", i, all[i].fence, all[i-1].fence)
		}
	}
}

// blockedJob starts the job on every instance with a fn that signals
// when it starts and blocks until its ctx ends; it returns the channel
// of the starts (the instance's number and its slot) and, per instance, a
// channel closed when its RunEvery returns by itself.
func blockedJob(t *testing.T, tm timing, ins []coord.Backend, job string) (<-chan jobStart, []jobHandle) {
	t.Helper()
	starts := make(chan jobStart, 16)
	var ended []jobHandle
	for i, b := range ins {
		fn := func(ctx context.Context) error {
			slot, _ := coord.JobSlotFromContext(ctx)
			l, _ := coord.LockFromContext(ctx)
			starts <- jobStart{by: i, slot: slot, lock: l, ctx: ctx}
			<-ctx.Done()
			return context.Cause(ctx)
		}
		stop, done := runJobDone(t, b, job, jobSteady, fn, coord.WithJobTTL(tm.renewed))
		ended = append(ended, jobHandle{stop: stop, done: done})
	}
	return starts, ended
}

// jobHandle is one running RunEvery: stop ends it and returns its error,
// done is closed when it returned by itself.
type jobHandle struct {
	stop func() error
	done <-chan struct{}
}

type jobStart struct {
	by   int
	slot coord.JobSlot
	lock coord.Lock
	ctx  context.Context
}

func nextStart(t *testing.T, starts <-chan jobStart, d time.Duration, what string) jobStart {
	t.Helper()
	select {
	case s := <-starts:
		return s
	case <-time.After(d):
		t.Fatalf("no run started within %v %s", d, what)
		return jobStart{}
	}
}

func testJobRunnerClosed(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	starts, ended := blockedJob(t, tm, ins, "crash")
	first := nextStart(t, starts, tm.guard, "on any instance")
	// The runner's instance goes away mid-run, without completing.
	closeCtx, cancel := context.WithTimeout(context.Background(), tm.closing)
	defer cancel()
	must(t, ins[first.by].Close(closeCtx), "Close of the runner's instance")
	second := nextStart(t, starts, tm.closing, "after the runner's instance closed")
	if second.by == first.by {
		t.Fatalf("the closed instance %d ran the job again", first.by)
	}
	if second.slot.Index != first.slot.Index {
		t.Errorf("the job ran again in period %d, want the same period %d", second.slot.Index, first.slot.Index)
	}
	if second.lock.Fence() <= first.lock.Fence() {
		t.Errorf("the second run's fence %d is not above the first's %d", second.lock.Fence(), first.lock.Fence())
	}
	if !closedWithin(ended[first.by].done, tm.closing) {
		t.Errorf("RunEvery on the closed instance did not return within %v", tm.closing)
	} else if err := ended[first.by].stop(); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("RunEvery on the closed instance returned %v, want ErrClosed", err)
	}
	select {
	case s := <-starts:
		t.Errorf("a third run started on instance %d while the second ran", s.by)
	default:
	}
}

func testJobLeaseForced(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	starts, _ := blockedJob(t, tm, ins, "forced")
	first := nextStart(t, starts, tm.guard, "on any instance")
	other := ins[(first.by+1)%len(ins)]
	released, err := other.Locker().ForceRelease(ctx, coord.JobLockPrefix+"forced")
	must(t, err, "ForceRelease of the job's lease")
	if !released {
		t.Fatal("ForceRelease found no lease on the running job")
	}
	second := nextStart(t, starts, tm.expiry+tm.closing, "after the runner's lease was force-released")
	if second.slot.Index != first.slot.Index {
		t.Errorf("the job ran again in period %d, want the same period %d", second.slot.Index, first.slot.Index)
	}
	if second.lock.Fence() <= first.lock.Fence() {
		t.Errorf("the second run's fence %d is not above the first's %d", second.lock.Fence(), first.lock.Fence())
	}
	if !closedWithin(first.ctx.Done(), tm.expiry) {
		t.Fatalf("the first run's ctx was not cancelled within %v of its lease being force-released", tm.expiry)
	}
	if cause := context.Cause(first.ctx); !errors.Is(cause, coord.ErrLeaseLost) {
		t.Errorf("the first run's ctx ended with %v, want ErrLeaseLost", cause)
	}
}

func testJobRetried(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	boom := errors.New("boom")
	var tries atomic.Int32
	var reported atomic.Int32
	fn := func(context.Context) error {
		if tries.Add(1) <= 2 {
			return boom
		}
		return nil
	}
	onErr := coord.OnJobError(func(_ context.Context, _ coord.JobSlot, err error) error {
		if errors.Is(err, boom) {
			reported.Add(1)
		}
		return nil
	})
	for _, b := range ins {
		runJob(t, b, "retried", jobSteady, fn, coord.WithJobBackoff(tm.poll, tm.poll), onErr)
	}
	eventually(t, tm.guard, func() bool {
		s, err := ins[0].Jobs().Due(ctx, "retried", jobSteady)
		return err == nil && s.Done
	}, "the job was not recorded done after two failures (tries: %v)", func() any { return tries.Load() })
	s, err := ins[1].Jobs().Due(ctx, "retried", jobSteady)
	must(t, err, "Due")
	if s.Failures != 2 {
		t.Errorf("Due reports %d failures, want 2", s.Failures)
	}
	if n := tries.Load(); n != 3 {
		t.Errorf("fn ran %d times, want 3 (two failures, then a success)", n)
	}
	if n := reported.Load(); n != 2 {
		t.Errorf("OnError saw fn's error %d times, want 2", n)
	}
}

func testJobNeverDone(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	var tries atomic.Int32
	fn := func(context.Context) error { tries.Add(1); return errors.New("always") }
	for _, b := range ins {
		runJob(t, b, "never", jobSteady, fn, coord.WithJobBackoff(tm.poll/5, tm.poll/5))
	}
	var s coord.JobSlot
	eventually(t, tm.guard, func() bool {
		var err error
		s, err = ins[0].Jobs().Due(ctx, "never", jobSteady)
		return err == nil && (s.Done || s.Failures >= 5)
	}, "a failing job's 5 failures were not recorded (%v runs, slot %+v)", func() any { return tries.Load() }, func() any { return s })
	if s.Done {
		t.Error("a job whose every run failed is recorded done")
	}
	if n := tries.Load(); int(n) < s.Failures {
		t.Errorf("Due reports %d failures after %d runs", s.Failures, n)
	}
	// Failed stop a halting error handler: RunEvery returns its error.
	halt := errors.New("halt")
	stop, ended := runJobDone(t, ins[0], "halting", jobSteady, fn, coord.OnJobError(func(context.Context, coord.JobSlot, error) error { return halt }))
	eventually(t, tm.guard, func() bool {
		s, err := ins[1].Jobs().Due(ctx, "halting", jobSteady)
		return err == nil && s.Failures == 1
	}, "the halting job's failure was not recorded")
	// RunEvery ends by itself (stopping it first would make it return
	// the cancellation instead).
	if !closedWithin(ended, tm.guard) {
		t.Fatalf("RunEvery with a halting OnError did not return within %v", tm.guard)
	}
	if err := stop(); !errors.Is(err, halt) {
		t.Errorf("RunEvery with a halting OnError returned %v, want its error", err)
	}
}

func testJobDue(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	j := ins[0].Jobs()
	before := time.Now()
	s, err := j.Due(ctx, "due", jobSteady)
	must(t, err, "Due")
	after := time.Now()
	if s.Done || s.Failures != 0 || s.Period != jobSteady {
		t.Fatalf("Due of a new job = %+v, want not done, no failures, period %v", s, jobSteady)
	}
	if s.Next <= 0 || s.Next > jobSteady {
		t.Fatalf("Next = %v, want in (0, %v]", s.Next, jobSteady)
	}
	// Index*Period + (Period - Next) is the backend's now.
	now := s.Start().Add(jobSteady - s.Next)
	if now.Before(before.Add(-tm.clock)) || now.After(after.Add(tm.clock)) {
		t.Errorf("Due's slot puts the backend's now at %v, the test's is %v", now, before)
	}
	// A short period: after Next, the next period has begun.
	period := jobPeriod(tm)
	s1, err := ins[1].Jobs().Due(ctx, "due-short", period)
	must(t, err, "Due")
	if s1.Next <= 0 || s1.Next > period {
		t.Fatalf("Next = %v, want in (0, %v]", s1.Next, period)
	}
	hold(ctx, s1.Next+tm.tick)
	s2, err := j.Due(ctx, "due-short", period)
	must(t, err, "Due")
	if s2.Index <= s1.Index {
		t.Errorf("Due %v after Next (%v) still reports period %d, was %d", s1.Next+tm.tick, s1.Next, s2.Index, s1.Index)
	}
}

func testJobCompleteMonotonic(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	a, b := ins[0].Jobs(), ins[1].Jobs()
	s, err := a.Due(ctx, "mono", jobSteady)
	must(t, err, "Due")
	// A slot of a period not started yet is refused, and changes nothing.
	future := s
	future.Index++
	if err := a.Complete(ctx, "mono", future); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("Complete of a future slot: %v, want ErrInvalid", err)
	}
	if s2, err := b.Due(ctx, "mono", jobSteady); err != nil || s2.Done {
		t.Fatalf("after a refused Complete, Due = %+v, %v; want not done", s2, err)
	}
	must(t, a.Complete(ctx, "mono", s), "Complete")
	s2, err := b.Due(ctx, "mono", jobSteady)
	must(t, err, "Due on another instance")
	if !s2.Done || s2.Index != s.Index {
		t.Fatalf("after Complete, another instance's Due = %+v; want done in period %d", s2, s.Index)
	}
	// A late Complete for an older period moves nothing back; a second
	// one for this period is harmless.
	old := s
	old.Index--
	must(t, b.Complete(ctx, "mono", old), "Complete of an ended period")
	must(t, b.Complete(ctx, "mono", s), "second Complete")
	if s3, err := a.Due(ctx, "mono", jobSteady); err != nil || !s3.Done {
		t.Fatalf("after a late Complete, Due = %+v, %v; want still done", s3, err)
	}
	// The record holds one period: the next one is due again, and a
	// Complete of the period that ended does not mark it.
	period := jobPeriod(tm)
	p1, err := a.Due(ctx, "mono-short", period)
	must(t, err, "Due")
	must(t, a.Complete(ctx, "mono-short", p1), "Complete")
	hold(ctx, p1.Next+tm.tick)
	must(t, b.Complete(ctx, "mono-short", p1), "late Complete")
	p2, err := b.Due(ctx, "mono-short", period)
	must(t, err, "Due")
	if p2.Index <= p1.Index || p2.Done {
		t.Errorf("next period: Due = %+v; want period after %d, not done", p2, p1.Index)
	}
	// Another period is another schedule: the record of jobSteady does
	// not make the job done with a period of an hour.
	if s4, err := a.Due(ctx, "mono", time.Hour); err != nil || s4.Done {
		t.Errorf("Due with another period = %+v, %v; want not done", s4, err)
	}
}

func testJobFailCounts(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	a, b := ins[0].Jobs(), ins[1].Jobs()
	s, err := a.Due(ctx, "fails", jobSteady)
	must(t, err, "Due")
	must(t, a.Fail(ctx, "fails", s), "Fail")
	must(t, b.Fail(ctx, "fails", s), "Fail on another instance")
	s2, err := b.Due(ctx, "fails", jobSteady)
	must(t, err, "Due")
	if s2.Failures != 2 || s2.Done {
		t.Fatalf("after two Fails, Due = %+v; want 2 failures, not done", s2)
	}
	must(t, a.Complete(ctx, "fails", s), "Complete")
	if s3, err := b.Due(ctx, "fails", jobSteady); err != nil || !s3.Done || s3.Failures != 2 {
		t.Fatalf("after Complete, Due = %+v, %v; want done with the 2 failures", s3, err)
	}
	future := s
	future.Index += 2
	if err := a.Fail(ctx, "fails", future); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("Fail of a future slot: %v, want ErrInvalid", err)
	}
	// Failures are per period.
	period := jobPeriod(tm)
	p1, err := a.Due(ctx, "fails-short", period)
	must(t, err, "Due")
	must(t, a.Fail(ctx, "fails-short", p1), "Fail")
	hold(ctx, p1.Next+tm.tick)
	must(t, a.Fail(ctx, "fails-short", p1), "late Fail")
	p2, err := b.Due(ctx, "fails-short", period)
	must(t, err, "Due")
	if p2.Index <= p1.Index || p2.Failures != 0 {
		t.Errorf("next period: Due = %+v; want a later period than %d with no failures", p2, p1.Index)
	}
}

func testJobContext(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 1)
	type seen struct {
		lock coord.Lock
		slot coord.JobSlot
		held bool
	}
	got := make(chan seen, 1)
	runJob(t, ins[0], "ctx", jobSteady, func(ctx context.Context) error {
		l, lok := coord.LockFromContext(ctx)
		s, sok := coord.JobSlotFromContext(ctx)
		if !lok || !sok {
			return fmt.Errorf("fn's ctx: lease %v, slot %v", lok, sok)
		}
		held := false
		for _, h := range ins[0].Locker().Held() {
			held = held || h.Token() == l.Token()
		}
		got <- seen{lock: l, slot: s, held: held}
		return nil
	})
	var s seen
	select {
	case s = <-got:
	case <-time.After(tm.guard):
		t.Fatalf("the job did not run within %v", tm.guard)
	}
	if s.lock.Resource() != coord.JobLockPrefix+"ctx" || s.lock.Fence() <= 0 || !s.held {
		t.Errorf("fn's lease: resource %q fence %d held %v; want %q, a fence, held by the instance",
			s.lock.Resource(), s.lock.Fence(), s.held, coord.JobLockPrefix+"ctx")
	}
	if s.slot.Period != jobSteady || s.slot.Done {
		t.Errorf("fn's slot = %+v; want period %v, not done", s.slot, jobSteady)
	}
}

func testWithLockGivesLease(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 1)
	ctx := ctxOf(t)
	prev, err := ins[0].Locker().Acquire(ctx, "wl-lease", coord.WithTTL(tm.long))
	must(t, err, "Acquire")
	must(t, prev.Release(ctx), "Release")
	err = coord.WithLock(ctx, ins[0].Locker(), "wl-lease", func(ctx context.Context) error {
		l, ok := coord.LockFromContext(ctx)
		if !ok {
			return errors.New("fn's ctx carries no lease")
		}
		if l.Resource() != "wl-lease" || l.Fence() <= prev.Fence() {
			return fmt.Errorf("fn's lease: resource %q fence %d; want wl-lease, a fence above %d", l.Resource(), l.Fence(), prev.Fence())
		}
		for _, h := range ins[0].Locker().Held() {
			if h.Token() == l.Token() {
				if _, err := l.TTL(ctx); err != nil {
					return fmt.Errorf("TTL of fn's lease: %w", err)
				}
				return nil
			}
		}
		return errors.New("fn's lease is not among the instance's held leases")
	}, coord.WithTTL(tm.long))
	must(t, err, "WithLock")
}

func testJobBadInput(t *testing.T, h Harness) {
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	j := ins[0].Jobs()
	invalid := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
	good, err := j.Due(ctx, "bad-input", jobSteady)
	must(t, err, "Due")
	for label, n := range badNames() {
		_, err := j.Due(ctx, n, time.Hour)
		invalid("Due with name "+label, err)
		invalid("Complete with name "+label, j.Complete(ctx, n, good))
		invalid("Fail with name "+label, j.Fail(ctx, n, good))
	}
	for _, p := range []time.Duration{0, -time.Second, time.Microsecond, 999 * time.Microsecond, coord.MaxJobPeriod + time.Second} {
		_, err := j.Due(ctx, "bad-input", p)
		invalid(fmt.Sprintf("Due with period %v", p), err)
		slot := good
		slot.Period = p
		invalid(fmt.Sprintf("Complete with period %v", p), j.Complete(ctx, "bad-input", slot))
		invalid(fmt.Sprintf("Fail with period %v", p), j.Fail(ctx, "bad-input", slot))
	}
	neg := good
	neg.Index = -1
	invalid("Complete with a negative index", j.Complete(ctx, "bad-input", neg))
	invalid("Fail with a negative index", j.Fail(ctx, "bad-input", neg))
	if s, err := ins[1].Jobs().Due(ctx, "bad-input", jobSteady); err != nil || s.Done || s.Failures != 0 {
		t.Errorf("after refused calls, Due = %+v, %v; want nothing recorded", s, err)
	}
	fn := func(context.Context) error { t.Error("RunEvery ran fn with bad input"); return nil }
	invalid("RunEvery with an empty job", coord.RunEvery(ctx, ins[0], "", time.Hour, fn))
	invalid("RunEvery with period 0", coord.RunEvery(ctx, ins[0], "x", 0, fn))
	invalid("RunEvery with a negative period", coord.RunEvery(ctx, ins[0], "x", -time.Hour, fn))
	invalid("RunEvery with a nil fn", coord.RunEvery(ctx, ins[0], "x", time.Hour, nil))
	invalid("RunEvery with a lease TTL of 0", coord.RunEvery(ctx, ins[0], "x", time.Hour, fn, coord.WithJobTTL(0)))
	invalid("RunEvery with a negative backoff", coord.RunEvery(ctx, ins[0], "x", time.Hour, fn, coord.WithJobBackoff(-1, 0)))
	invalid("RunEvery with a bad job name", coord.RunEvery(ctx, ins[0], "a\nb", time.Hour, fn))
}
