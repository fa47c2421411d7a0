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

// RunElector runs the cases about [coord.Elector], its leaderships and
// [coord.RunElected].
func RunElector(t *testing.T, maker HarnessMaker) {
	t.Helper()
	runCases(t, maker, electionCases())
}

func electionCases() []testCase {
	return []testCase{
		{name: "ResignHandsOver", serial: true, run: testElectResignHandsOver},
		{name: "AtMostOneLeaderChecker", serial: true, run: testElectChecker},
		{name: "LeaderVisibleEverywhere", run: testElectVisible},
		{name: "NoLeaderNotFound", run: testElectNotFound},
		{name: "TermsIncrease", run: testElectTerms},
		{name: "ObserveOrdered", run: testElectObserveOrdered},
		{name: "ObserveAfterGap", needs: capCut, run: testElectObserveGap},
		{name: "ObserveEnds", run: testElectObserveEnds},
		{name: "CrashFailover", run: testElectCrashFailover},
		{name: "StaleLeaderNotHeld", run: testElectStale},
		{name: "NoReentrantCampaign", run: testElectNoReentry},
		{name: "CloseResigns", run: testElectCloseResigns},
		{name: "BadInput", run: testElectBadInput},
		{name: "RunElectedCancelsOnLoss", run: testRunElectedLoss},
		{name: "RunElectedNeverWithoutLeadership", run: testRunElectedNever},
	}
}

// campaign takes leadership of election from b and fails t on error.
func campaign(t *testing.T, b coord.Backend, election, identity string, opts ...coord.LockOption) coord.Leadership {
	t.Helper()
	l, err := b.Elector().Campaign(ctxOf(t), election, identity, opts...)
	must(t, err, "Campaign")
	return l
}

// leaderOf returns the leader of election seen from b, or the zero
// LeaderInfo when there is none.
func leaderOf(t *testing.T, b coord.Backend, election string) coord.LeaderInfo {
	t.Helper()
	info, err := b.Elector().Leader(ctxOf(t), election)
	if errors.Is(err, coord.ErrNotFound) {
		return coord.LeaderInfo{}
	}
	must(t, err, "Leader")
	return info
}

func testElectResignHandsOver(t *testing.T, h Harness) {
	requirePrimitive(t, h, Elections)
	tm := timingOf(h)
	leaseWakeRounds(t, h, "resignation", func(ctx context.Context, holder coord.Backend, res string) func() {
		l, err := holder.Elector().Campaign(ctx, res, "first", coord.WithTTL(tm.held))
		must(t, err, "Campaign")
		return func() { must(t, l.Release(ctx), "Release (resign)") }
	}, func(ctx context.Context, b coord.Backend, res string, opts ...coord.LockOption) (coord.Lock, error) {
		return b.Elector().Campaign(ctx, res, "second", opts...)
	})
}

// testElectChecker runs three candidates that campaign for ever; an admin
// kills the leader again and again, by force release or by closing its
// instance (a fresh instance takes its place). Each leadership's span,
// from Campaign's return to the kill (or its Done), must not overlap any
// other, and terms must increase in the order leaders began.
func testElectChecker(t *testing.T, h Harness) {
	requirePrimitive(t, h, Elections)
	tm := timingOf(h)
	ctx := ctxOf(t)
	admin := instances(t, h, 1)[0]
	type span struct {
		term       int64
		instance   string
		start, end time.Time
	}
	var mu sync.Mutex
	var spans []*span
	byTerm := map[int64]*span{}
	endSpan := func(term int64, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if s := byTerm[term]; s != nil && (s.end.IsZero() || at.Before(s.end)) {
			s.end = at
		}
	}
	var wg sync.WaitGroup
	var candErrs atomic.Int64
	type cand struct {
		b    coord.Backend
		stop context.CancelFunc
	}
	startCandidate := func(i int) cand {
		b := h.NewInstance(t)
		cctx, stop := context.WithCancel(ctx)
		wg.Go(func() {
			for cctx.Err() == nil {
				l, err := b.Elector().Campaign(cctx, "checker", fmt.Sprintf("candidate-%d", i), coord.WithTTL(tm.renewed), coord.WithAutoRenew(), coord.WithWait(tm.poll))
				if err != nil {
					if cctx.Err() == nil && !errors.Is(err, coord.ErrClosed) {
						candErrs.Add(1)
						t.Errorf("candidate %d: Campaign: %v", i, err)
					}
					return
				}
				s := &span{term: l.Fence(), instance: b.InstanceID(), start: time.Now()}
				mu.Lock()
				spans = append(spans, s)
				byTerm[s.term] = s
				mu.Unlock()
				select {
				case <-l.Done():
				case <-cctx.Done():
				}
				endSpan(s.term, time.Now())
			}
		})
		return cand{b, stop}
	}
	cands := []cand{startCandidate(0), startCandidate(1), startCandidate(2)}
	next := 3
	defer func() {
		for _, c := range cands {
			c.stop()
		}
		wg.Wait()
	}()
	var lastTerm int64
	const kills = 6
	for k := 0; k < kills; k++ {
		var info coord.LeaderInfo
		eventually(t, tm.renewed+tm.expiry, func() bool {
			info = leaderOf(t, admin, "checker")
			return info.InstanceID != "" && info.Term > lastTerm
		}, "a new leader after kill %d", k)
		// Let the leader's span begin before the kill.
		eventually(t, tm.prompt, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return byTerm[info.Term] != nil
		}, "the leader of term %d learns it leads", info.Term)
		lastTerm = info.Term
		before := time.Now()
		endSpan(info.Term, before)
		if k%2 == 0 {
			ok, err := admin.Elector().ForceRelease(ctx, "checker")
			must(t, err, "ForceRelease")
			if !ok {
				t.Fatalf("kill %d: ForceRelease found no leader", k)
			}
			continue
		}
		for i, c := range cands {
			if c.b.InstanceID() != info.InstanceID {
				continue
			}
			must(t, c.b.Close(ctx), "Close of the leader's instance")
			c.stop()
			cands[i] = startCandidate(next)
			next++
		}
	}
	eventually(t, tm.renewed+tm.expiry, func() bool {
		info := leaderOf(t, admin, "checker")
		if info.InstanceID == "" || info.Term <= lastTerm {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		return byTerm[info.Term] != nil
	}, "a leader after the last kill")
	mu.Lock()
	defer mu.Unlock()
	if len(spans) < kills+1 {
		t.Fatalf("%d leaderships for %d kills", len(spans), kills)
	}
	for i := 1; i < len(spans); i++ {
		if spans[i].term <= spans[i-1].term {
			t.Errorf("leadership %d began with term %d, not above the previous %d", i, spans[i].term, spans[i-1].term)
		}
	}
	for i, a := range spans {
		for _, b := range spans[i+1:] {
			aEnd := a.end
			if aEnd.IsZero() {
				aEnd = time.Now()
			}
			if b.start.Before(aEnd) && a.start.Before(b.start) {
				t.Errorf("two leaders at once: term %d (%s) from %v to %v, term %d (%s) from %v", a.term, a.instance, a.start.Format(time.StampMicro), aEnd.Format(time.StampMicro), b.term, b.instance, b.start.Format(time.StampMicro))
			}
		}
	}
}

func testElectVisible(t *testing.T, h Harness) {
	requirePrimitive(t, h, Elections)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	l := campaign(t, ins[0], "vis", "10.0.0.1:8080", coord.WithTTL(tm.long))
	if l.Identity() != "10.0.0.1:8080" || l.Resource() != "vis" {
		t.Errorf("leadership: identity %q, resource %q", l.Identity(), l.Resource())
	}
	for i, in := range ins {
		info := leaderOf(t, in, "vis")
		if info.Election != "vis" || info.Identity != "10.0.0.1:8080" || info.InstanceID != ins[0].InstanceID() || info.Term != l.Fence() {
			t.Errorf("instance %d sees %+v, want identity 10.0.0.1:8080, instance %s, term %d", i, info, ins[0].InstanceID(), l.Fence())
		}
		if info.TTL <= 0 || info.TTL > tm.long {
			t.Errorf("instance %d sees TTL %v, want in (0, %v]", i, info.TTL, tm.long)
		}
	}
	must(t, l.Release(ctxOf(t)), "Release")
	if !closedWithin(l.Done(), tm.prompt) {
		t.Errorf("Done not closed after resigning")
	}
}

func testElectNotFound(t *testing.T, h Harness) {
	requirePrimitive(t, h, Elections)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	if _, err := ins[0].Elector().Leader(ctx, "nf"); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Leader of an election nobody entered: %v, want ErrNotFound", err)
	}
	l := campaign(t, ins[0], "nf", "a", coord.WithTTL(tm.long))
	must(t, l.Release(ctx), "Release")
	if _, err := ins[1].Elector().Leader(ctx, "nf"); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Leader after the leader resigned: %v, want ErrNotFound", err)
	}
	if ok, err := ins[1].Elector().ForceRelease(ctx, "nf"); err != nil || ok {
		t.Errorf("ForceRelease with no leader = %v, %v, want false", ok, err)
	}
}

func testElectTerms(t *testing.T, h Harness) {
	requirePrimitive(t, h, Elections)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	var last int64
	for i := 0; i < 9; i++ {
		l := campaign(t, ins[i%3], "terms", fmt.Sprint(i), coord.WithTTL(tm.long), coord.WithRetry(0, 0))
		if l.Fence() <= last {
			t.Fatalf("term %d of leader %d is not above %d", l.Fence(), i, last)
		}
		last = l.Fence()
		if i%3 == 2 {
			if ok, err := ins[(i+1)%3].Elector().ForceRelease(ctx, "terms"); err != nil || !ok {
				t.Fatalf("ForceRelease = %v, %v", ok, err)
			}
		} else {
			must(t, l.Release(ctx), "Release")
		}
	}
	// A short leadership that runs out, then the next.
	l := campaign(t, ins[0], "terms", "short", coord.WithTTL(tm.short))
	l2 := campaign(t, ins[1], "terms", "next", coord.WithTTL(tm.long), coord.WithWait(tm.poll))
	if l2.Fence() <= l.Fence() || l.Fence() <= last {
		t.Errorf("terms %d, %d after %d do not increase", l.Fence(), l2.Fence(), last)
	}
}

// sameLeader reports whether two observations name the same leadership.
func sameLeader(a, b coord.LeaderInfo) bool {
	return a.InstanceID == b.InstanceID && a.Term == b.Term && a.Identity == b.Identity
}

// distinctLeaders drops consecutive observations of one leadership.
func distinctLeaders(seen []coord.LeaderInfo) []coord.LeaderInfo {
	var out []coord.LeaderInfo
	for _, s := range seen {
		if len(out) == 0 || !sameLeader(out[len(out)-1], s) {
			out = append(out, s)
		}
	}
	return out
}

func describeLeaders(seen []coord.LeaderInfo) string {
	s := ""
	for _, v := range seen {
		if v.InstanceID == "" {
			s += "[none] "
			continue
		}
		s += fmt.Sprintf("[%s term %d] ", v.Identity, v.Term)
	}
	return s
}

func testElectObserveOrdered(t *testing.T, h Harness) {
	requirePrimitive(t, h, Elections)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	var seen recorder[coord.LeaderInfo]
	sub, err := ins[2].Elector().Observe(ctx, "obs", seen.add)
	must(t, err, "Observe")
	defer sub.Unsubscribe()
	eventually(t, tm.delivery, func() bool { return seen.len() > 0 }, "Observe delivers the state now")
	if first := seen.all()[0]; first.InstanceID != "" || first.Election != "obs" {
		t.Errorf("first observation of an election nobody leads: %+v", first)
	}
	a := campaign(t, ins[0], "obs", "A", coord.WithTTL(tm.long))
	eventually(t, tm.delivery, func() bool { l, ok := seen.last(); return ok && l.Identity == "A" }, "Observe sees A: %s", func() any { return describeLeaders(seen.all()) })
	must(t, a.Release(ctx), "A resigns")
	eventually(t, tm.delivery, func() bool { l, ok := seen.last(); return ok && l.InstanceID == "" }, "Observe sees none: %s", func() any { return describeLeaders(seen.all()) })
	b := campaign(t, ins[1], "obs", "B", coord.WithTTL(tm.long))
	eventually(t, tm.delivery, func() bool { l, ok := seen.last(); return ok && l.Identity == "B" }, "Observe sees B: %s", func() any { return describeLeaders(seen.all()) })
	got := distinctLeaders(seen.all())
	if len(got) != 4 || got[0].InstanceID != "" || got[1].Identity != "A" || got[2].InstanceID != "" || got[3].Identity != "B" {
		t.Fatalf("observed %s, want [none] [A] [none] [B]", describeLeaders(got))
	}
	if got[1].Term != a.Fence() || got[3].Term != b.Fence() || got[3].Term <= got[1].Term {
		t.Errorf("observed terms %d, %d; the leaders had %d, %d", got[1].Term, got[3].Term, a.Fence(), b.Fence())
	}
	if got[1].InstanceID != ins[0].InstanceID() || got[3].InstanceID != ins[1].InstanceID() {
		t.Errorf("observed instances %q, %q", got[1].InstanceID, got[3].InstanceID)
	}
	// Expiry is a change too: B's successor after B's lease runs out.
	must(t, b.Release(ctx), "B resigns")
	c := campaign(t, ins[0], "obs", "C", coord.WithTTL(tm.short))
	sawC := func() bool {
		return seen.any(func(i coord.LeaderInfo) bool { return i.Identity == "C" && i.Term == c.Fence() })
	}
	eventually(t, tm.short+tm.expiry+tm.delivery, func() bool {
		l, ok := seen.last()
		return sawC() && ok && l.InstanceID == ""
	}, "Observe sees C lead, then its lease run out: %s", func() any { return describeLeaders(seen.all()) })
}

func testElectObserveGap(t *testing.T, h Harness) {
	requirePrimitive(t, h, Elections)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	cutter := h.(SubscriptionCutter)
	var seen recorder[coord.LeaderInfo]
	sub, err := ins[2].Elector().Observe(ctx, "gap", seen.add)
	must(t, err, "Observe")
	defer sub.Unsubscribe()
	a := campaign(t, ins[0], "gap", "A", coord.WithTTL(tm.long))
	eventually(t, tm.delivery, func() bool { l, ok := seen.last(); return ok && l.Identity == "A" }, "Observe sees A")
	cutter.CutSubscription(t, ins[2])
	must(t, a.Release(ctx), "A resigns")
	b := campaign(t, ins[1], "gap", "B", coord.WithTTL(tm.long))
	eventually(t, tm.reconnect+tm.delivery, func() bool {
		last, ok := seen.last()
		return ok && last.Identity == "B" && last.Term == b.Fence()
	}, "after the gap the observer ends up with B: %s", func() any { return describeLeaders(seen.all()) })
}

func testElectObserveEnds(t *testing.T, h Harness) {
	requirePrimitive(t, h, Elections)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	octx, cancel := context.WithCancel(ctx)
	var seen recorder[coord.LeaderInfo]
	sub, err := ins[1].Elector().Observe(octx, "oe", seen.add)
	must(t, err, "Observe")
	eventually(t, tm.delivery, func() bool { return seen.len() > 0 }, "the first observation")
	cancel()
	if !closedWithin(sub.Done(), tm.ended) {
		t.Fatalf("an observation whose ctx ended not done within %v", tm.ended)
	}
	n := seen.len()
	l := campaign(t, ins[0], "oe", "late", coord.WithTTL(tm.long))
	hold(ctx, tm.settle)
	if seen.len() != n {
		t.Errorf("an ended observation was called again: %s", describeLeaders(seen.all()))
	}
	sub2, err := ins[1].Elector().Observe(ctx, "oe", seen.add)
	must(t, err, "Observe")
	sub2.Unsubscribe()
	sub2.Unsubscribe()
	if !closedWithin(sub2.Done(), tm.ended) {
		t.Errorf("Done not closed after Unsubscribe")
	}
	must(t, l.Release(ctx), "Release")
}

func testElectCrashFailover(t *testing.T, h Harness) {
	requirePrimitive(t, h, Elections)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	bound := tm.lease + tm.expiry
	// The crashed leader: nobody renews its lease.
	a := campaign(t, ins[0], "crash", "A", coord.WithTTL(tm.lease))
	start := time.Now()
	b := campaign(t, ins[1], "crash", "B", coord.WithTTL(tm.long), coord.WithRetry(3, 4*bound))
	took := time.Since(start)
	if took > bound {
		t.Errorf("a successor led %v after a %v leadership began (RetryDelay %v): not bounded by the TTL", took, tm.lease, 4*bound)
	}
	if !isClosed(a.Done()) && !closedWithin(a.Done(), tm.prompt) {
		t.Errorf("the crashed leader's Done still open after its successor took over")
	}
	if b.Fence() <= a.Fence() {
		t.Errorf("successor's term %d not above %d", b.Fence(), a.Fence())
	}
	if info := leaderOf(t, ins[0], "crash"); info.Identity != "B" || info.Term != b.Fence() {
		t.Errorf("Leader = %+v, want B", info)
	}
}

func testElectStale(t *testing.T, h Harness) {
	requirePrimitive(t, h, Elections)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	stale := campaign(t, ins[0], "stale", "A", coord.WithTTL(tm.short))
	b := campaign(t, ins[1], "stale", "B", coord.WithTTL(tm.long), coord.WithWait(tm.poll))
	if err := stale.Release(ctx); !errors.Is(err, coord.ErrNotHeld) || errors.Is(err, coord.ErrExpired) {
		t.Errorf("a deposed leader's Release while another leads: %v, want ErrNotHeld (not ErrExpired)", err)
	}
	if err := stale.Extend(ctx, tm.held); !errors.Is(err, coord.ErrNotHeld) || errors.Is(err, coord.ErrExpired) {
		t.Errorf("a deposed leader's Extend while another leads: %v, want ErrNotHeld (not ErrExpired)", err)
	}
	if info := leaderOf(t, ins[0], "stale"); info.Identity != "B" {
		t.Errorf("after the stale calls Leader = %+v, want B", info)
	}
	if ttl, err := b.TTL(ctx); err != nil || ttl > tm.long {
		t.Errorf("B's TTL after the stale Extend: %v, %v", ttl, err)
	}
	must(t, b.Release(ctx), "Release")
	if err := b.Release(ctx); err != nil {
		t.Errorf("second resignation: %v, want nil", err)
	}
	if err := b.Extend(ctx, tm.long); !errors.Is(err, coord.ErrExpired) {
		t.Errorf("Extend after resigning with no leader: %v, want ErrExpired", err)
	}
}

func testElectNoReentry(t *testing.T, h Harness) {
	requirePrimitive(t, h, Elections)
	tm := timingOf(h)
	in := instances(t, h, 1)[0]
	ctx := ctxOf(t)
	l := campaign(t, in, "reent", "A", coord.WithTTL(tm.long))
	if _, err := in.Elector().Campaign(ctx, "reent", "A", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Errorf("a second Campaign by the leading instance: %v, want ErrNotAcquired", err)
	}
	must(t, l.Release(ctx), "Release")
}

func testElectCloseResigns(t *testing.T, h Harness) {
	requirePrimitive(t, h, Elections)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	a, b := ins[0], ins[1]
	ctx := ctxOf(t)
	l := campaign(t, a, "cr", "A", coord.WithTTL(tm.renewed), coord.WithAutoRenew())
	got := make(chan coord.Leadership, 1)
	go func() {
		l2, err := b.Elector().Campaign(ctx, "cr", "B", coord.WithTTL(tm.held), coord.WithRetry(10, tm.retry))
		if err != nil {
			t.Errorf("Campaign: %v", err)
		}
		got <- l2
	}()
	hold(ctx, tm.settle)
	must(t, a.Close(ctx), "Close")
	if !isClosed(l.Done()) {
		t.Errorf("the leadership's Done still open after Close returned")
	}
	select {
	case l2 := <-got:
		if l2 != nil && l2.Fence() <= l.Fence() {
			t.Errorf("term %d after Close not above %d", l2.Fence(), l.Fence())
		}
	case <-time.After(tm.prompt):
		t.Fatalf("no successor within %v of the leader's Close", tm.prompt)
	}
	if _, err := a.Elector().Leader(ctx, "cr"); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("Leader after Close: %v, want ErrClosed", err)
	}
	if _, err := a.Elector().Campaign(ctx, "cr", "A"); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("Campaign after Close: %v, want ErrClosed", err)
	}
}

func testElectBadInput(t *testing.T, h Harness) {
	requirePrimitive(t, h, Elections)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	e := ins[0].Elector()
	invalid := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
	for label, n := range badNames() {
		_, err := e.Campaign(ctx, n, "id")
		invalid("Campaign with election "+label, err)
		_, err = e.Campaign(ctx, "ebad", n)
		invalid("Campaign with identity "+label, err)
		_, err = e.Leader(ctx, n)
		invalid("Leader with election "+label, err)
		_, err = e.Observe(ctx, n, func(coord.LeaderInfo) {})
		invalid("Observe with election "+label, err)
		_, err = e.ForceRelease(ctx, n)
		invalid("ForceRelease with election "+label, err)
	}
	_, err := e.Observe(ctx, "ebad", nil)
	invalid("Observe with a nil function", err)
	for _, d := range []time.Duration{0, -time.Second, time.Microsecond} { // bad input, refused before any timing
		_, err := e.Campaign(ctx, "ebad", "id", coord.WithTTL(d))
		invalid(fmt.Sprintf("Campaign with TTL %v", d), err)
	}
	_, err = e.Campaign(ctx, "ebad", "id", coord.WithRetry(-2, tm.poll))
	invalid("Campaign with retries -2", err)
	if _, err := ins[1].Elector().Leader(ctx, "ebad"); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("refused Campaigns made a leader: %v", err)
	}
	l := campaign(t, ins[0], "ebad", "id", coord.WithTTL(tm.long))
	invalid("Extend(-1s)", l.Extend(ctx, -time.Second))
	if info := leaderOf(t, ins[1], "ebad"); info.TTL <= tm.long-tm.drift {
		t.Errorf("a refused Extend changed the TTL: %+v", info)
	}
	must(t, l.Release(ctx), "Release")
}

func testRunElectedLoss(t *testing.T, h Harness) {
	requirePrimitive(t, h, Elections)
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	rctx, cancel := context.WithCancel(ctx)
	type call struct {
		term  int64
		cause error
	}
	calls := make(chan call, 8)
	done := make(chan error, 1)
	go func() {
		done <- coord.RunElected(rctx, ins[0].Elector(), "rel", "A", func(fctx context.Context, l coord.Leadership) error {
			<-fctx.Done()
			calls <- call{l.Fence(), context.Cause(fctx)}
			return fctx.Err()
		}, coord.WithTTL(tm.lease))
	}()
	var first coord.LeaderInfo
	eventually(t, tm.prompt, func() bool { first = leaderOf(t, ins[1], "rel"); return first.Identity == "A" }, "RunElected leads")
	if ok, err := ins[1].Elector().ForceRelease(ctx, "rel"); err != nil || !ok {
		t.Fatalf("ForceRelease = %v, %v", ok, err)
	}
	select {
	case c := <-calls:
		if !errors.Is(c.cause, coord.ErrLeaseLost) {
			t.Errorf("a deposed leader's ctx ended with cause %v, want ErrLeaseLost", c.cause)
		}
		if c.term != first.Term {
			t.Errorf("fn ran with term %d, the leader had %d", c.term, first.Term)
		}
	case <-time.After(tm.lease + tm.expiry):
		t.Fatalf("a deposed leader's ctx not cancelled within %v", tm.lease+tm.expiry)
	}
	// It campaigns again and leads with a higher term.
	eventually(t, tm.prompt, func() bool {
		info := leaderOf(t, ins[1], "rel")
		return info.Identity == "A" && info.Term > first.Term
	}, "RunElected leads again after losing")
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("RunElected after its ctx ended: %v, want context.Canceled", err)
		}
	case <-time.After(tm.closing):
		t.Fatalf("RunElected did not return within %v of its ctx's end", tm.closing)
	}
	eventually(t, tm.prompt, func() bool { return leaderOf(t, ins[1], "rel").InstanceID == "" }, "RunElected resigned on return")
}

// testRunElectedNever runs fn through RunElected on three instances, each
// fn asking another instance who leads, and checks that no two
// leaderships are live at once and that terms only rise.
//
// Each fn first reads its leadership's TTL: the server holds it at least
// until that much after the read was sent. Another term starting, or
// another instance named leader, before that time is two leaderships at
// once, however loaded the machine.
//
// After that time a leadership may have ended on the server (its renewals
// failed while the machine stalled) and not yet at its holder: Done closes
// when the timer of the local deadline runs, and fn's ctx is cancelled a
// goroutine later. On a loaded machine another instance's fn can start in
// that gap, or a stale fn after the next term began. So an fn that sees
// its leadership over while its ctx is still live is not yet a failure:
// the server must no longer hold that leadership (its TTL is ErrNotHeld or
// ErrExpired: the lower term is what fences it), and its ctx must be
// cancelled with cause ErrLeaseLost within tm.expiry, the suite's bound on
// seeing a loss. Every step is recorded in a timeline, logged when the
// case fails.
func testRunElectedNever(t *testing.T, h Harness) {
	requirePrimitive(t, h, Elections)
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	rctx, cancel := context.WithCancel(ctx)
	tl := newTimeline()
	defer tl.logIfFailed(t)

	// leading is an fn that runs: its instance, leadership and ctx, the
	// time until which the server holds the leadership at least (zero if
	// unknown), and when a later term began while it ran.
	type leading struct {
		i         int
		l         coord.Leadership
		ctx       context.Context
		heldUntil time.Time
		deposed   time.Time
		by        int64
	}
	var mu sync.Mutex
	running := map[int]*leading{}
	var lastTerm int64 // the highest term an fn started with
	var calls, wrong atomic.Int64
	fail := func(format string, args ...any) {
		wrong.Add(1)
		msg := fmt.Sprintf(format, args...)
		tl.add("FAIL: %s", msg)
		t.Error(msg)
	}
	// overAtServer checks that the server no longer holds l, whose fn of
	// instance i found its leadership over (why).
	overAtServer := func(i int, l coord.Leadership, why string) {
		ttl, err := l.TTL(ctx)
		switch {
		case err == nil && ttl > 0:
			fail("fn of %d (term %d): %s, yet the server still holds its leadership (TTL %v): two leaders at once", i, l.Fence(), why, ttl)
		case errors.Is(err, coord.ErrUnavailable):
			tl.add("%d: term %d: TTL unanswered (%v)", i, l.Fence(), err)
		default:
			tl.add("%d: term %d: over at the server (TTL %v, %v)", i, l.Fence(), ttl, err)
		}
	}
	// lossSeen checks that fctx, of fn of instance i that found its
	// leadership over at since (why), ends with the loss by since+expiry;
	// fn does not return meanwhile, so only the loss (or the end of the
	// case) ends it.
	lossSeen := func(i int, l coord.Leadership, fctx context.Context, since time.Time, why string) {
		timer := time.NewTimer(time.Until(since.Add(tm.expiry)))
		defer timer.Stop()
		select {
		case <-fctx.Done():
			cause := context.Cause(fctx)
			tl.add("%d: term %d: ctx ended %v after %s (%v)", i, l.Fence(), time.Since(since).Round(time.Millisecond), why, cause)
			if !errors.Is(cause, coord.ErrLeaseLost) && rctx.Err() == nil {
				fail("fn of %d (term %d): %s; its ctx ended with cause %v, want ErrLeaseLost", i, l.Fence(), why, cause)
			}
		case <-timer.C:
			fail("fn of %d (term %d): %s, and its ctx was still live %v later (want cancelled with ErrLeaseLost)", i, l.Fence(), why, tm.expiry)
		}
	}
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for i := 0; i < 3; i++ {
		wg.Go(func() {
			err := coord.RunElected(rctx, ins[i].Elector(), "ren", fmt.Sprint(i), func(fctx context.Context, l coord.Leadership) error {
				calls.Add(1)
				term := l.Fence()
				me := &leading{i: i, l: l, ctx: fctx}
				sent := time.Now()
				ttl, terr := l.TTL(fctx)
				if terr == nil && ttl > tm.tick {
					// TTL may be rounded down to the granularity.
					me.heldUntil = sent.Add(ttl - tm.tick)
				}
				mu.Lock()
				now := time.Now()
				prev := lastTerm
				lastTerm = max(lastTerm, term)
				var others []leading
				for _, o := range running {
					others = append(others, *o)
					if o.l.Fence() < term && o.deposed.IsZero() {
						o.deposed, o.by = now, term
					}
				}
				running[i] = me
				mu.Unlock()
				tl.add("%d: fn starts with term %d (highest before %d), TTL %v (%v), ctx live %v, %d other fn running", i, term, prev, ttl, terr, fctx.Err() == nil, len(others))
				defer func() {
					mu.Lock()
					delete(running, i)
					deposed, by := me.deposed, me.by
					mu.Unlock()
					if !deposed.IsZero() {
						lossSeen(i, l, fctx, deposed, fmt.Sprintf("term %d began while it ran", by))
					}
					tl.add("%d: fn of term %d returns", i, term)
				}()
				for _, o := range others {
					switch {
					case o.l.Fence() == term:
						fail("fn of %d and fn of %d both run with term %d", o.i, i, term)
					case o.l.Fence() < term && now.Before(o.heldUntil):
						fail("fn of %d started with term %d %v before the server's hold of term %d (fn of %d) could end: two leaders at once", i, term, o.heldUntil.Sub(now), o.l.Fence(), o.i)
					case o.l.Fence() < term:
						tl.add("%d: fn of %d (term %d) still runs, its ctx live %v", i, o.i, o.l.Fence(), o.ctx.Err() == nil)
						overAtServer(o.i, o.l, fmt.Sprintf("term %d began while it ran", term))
					}
				}
				if term <= prev {
					// A later term began before this fn started: the
					// leadership ran out (the machine stalled past its
					// TTL) between Campaign and fn.
					why := fmt.Sprintf("fn started with term %d after term %d", term, prev)
					overAtServer(i, l, why)
					lossSeen(i, l, fctx, now, why)
					return nil
				}
				info, err := ins[(i+1)%3].Elector().Leader(fctx, "ren")
				answered := time.Now()
				tl.add("%d: term %d: %d says the leader is %q term %d (%v)", i, term, (i+1)%3, info.InstanceID, info.Term, err)
				if err != nil || info.InstanceID != ins[i].InstanceID() || info.Term != term {
					why := fmt.Sprintf("asked who leads and got %+v, %v", info, err)
					switch {
					case errors.Is(err, coord.ErrUnavailable):
						// No answer (a timeout on a loaded machine) says
						// nothing either way.
					case err == nil && answered.Before(me.heldUntil):
						fail("fn of %d (term %d) %s %v before the server's hold could end: two leaders at once", i, term, why, me.heldUntil.Sub(answered))
					case fctx.Err() != nil:
						// The leadership ended, or the case did, while the
						// question was on its way.
					default:
						overAtServer(i, l, why)
						lossSeen(i, l, fctx, answered, why)
						return nil
					}
				}
				hold(fctx, tm.work)
				return nil
			}, coord.WithTTL(tm.renewed))
			if !errors.Is(err, context.Canceled) {
				t.Errorf("RunElected %d: %v, want context.Canceled", i, err)
			}
		})
	}
	eventually(t, tm.guard, func() bool { return calls.Load() >= 15 }, "fn runs again and again: %d", func() any { return calls.Load() })
	cancel()
	wg.Wait()
	if n := wrong.Load(); n != 0 {
		t.Errorf("%d times two leaderships were live at once, or a leadership seen over kept its ctx live past %v", n, tm.expiry)
	}
}
