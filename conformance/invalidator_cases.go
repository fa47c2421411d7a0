package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

func invalidatorCases() []testCase {
	return []testCase{
		{name: "KeyReachesEveryOther", run: testInvKeyReachesEveryOther},
		{name: "PatternReachesEveryOther", run: testInvPatternReachesEveryOther},
		{name: "IncludeOwn", run: testInvIncludeOwn},
		{name: "MetadataRoundTrip", run: testInvMetadataRoundTrip},
		{name: "OrderPerPublisher", run: testInvOrder},
		{name: "OnlyKey", run: testInvOnlyKey},
		{name: "GlobRedisSemantics", run: testInvGlob},
		{name: "SubscribeActiveOnReturn", run: testInvSubscribeActive},
		{name: "UnsubscribeStops", run: testInvUnsubscribe},
		{name: "ContextEndsSubscription", run: testInvContextEnds},
		{name: "UnsubscribeInHandler", run: testInvUnsubscribeInHandler},
		{name: "PanicIsolated", run: testInvPanic},
		{name: "BlockedHandlerIsolated", run: testInvBlocked},
		{name: "OverflowEndsInPurge", run: testInvOverflow},
		{name: "ConcurrentPublishers", run: testInvConcurrent},
		{name: "Stats", run: testInvStats},
		{name: "BadInput", run: testInvBadInput},
		{name: "CutSubscriptionPurges", needs: capCut, run: testInvCut},
		{name: "CutSubscriptionGapNotice", needs: capCut, run: testInvCutGapNotice},
		{name: "ForeignMalformedPurges", needs: capForeign, run: testInvForeignMalformed},
		{name: "ForeignWireFormat", needs: capForeign, run: testInvForeignWellFormed},
	}
}

func subInv(t *testing.T, b coord.Backend, opts ...coord.SubscribeOption) (*recorder[coord.Invalidation], coord.Subscription) {
	t.Helper()
	r := &recorder[coord.Invalidation]{}
	sub, err := b.Invalidator().Subscribe(ctxOf(t), r.add, opts...)
	must(t, err, "Invalidator.Subscribe")
	return r, sub
}

func hasKey(key string) func(coord.Invalidation) bool {
	return func(i coord.Invalidation) bool { return i.Kind != coord.PurgeAll && i.Key == key }
}

func isPurge(i coord.Invalidation) bool { return i.Kind == coord.PurgeAll }

func keysOf(invs []coord.Invalidation) []string {
	var out []string
	for _, i := range invs {
		if i.Kind == coord.PurgeAll {
			out = append(out, "<purge:"+i.Reason+">")
			continue
		}
		out = append(out, i.Key)
	}
	return out
}

// fence waits until every recorder has received an invalidation of key
// published by from: later checks that something was not delivered then
// compare against deliveries that had as long to arrive.
func invFence(t *testing.T, tm timing, from coord.Backend, key string, recs ...*recorder[coord.Invalidation]) {
	t.Helper()
	must(t, from.Invalidator().Invalidate(ctxOf(t), key, nil), "Invalidate")
	eventually(t, tm.delivery, func() bool {
		for _, r := range recs {
			if !r.any(hasKey(key)) {
				return false
			}
		}
		return true
	}, "marker %q delivered", key)
}

func checkInvFrom(t *testing.T, tm timing, what string, got coord.Invalidation, kind coord.InvalidationKind, key string, from coord.Backend) {
	t.Helper()
	if got.Kind != kind || got.Key != key {
		t.Errorf("%s: got %v %q, want %v %q", what, got.Kind, got.Key, kind, key)
	}
	if got.InstanceID != from.InstanceID() {
		t.Errorf("%s: InstanceID %q, want the publisher's %q", what, got.InstanceID, from.InstanceID())
	}
	if !near(got.Timestamp, time.Now(), tm.clock) {
		t.Errorf("%s: Timestamp %v is not about now", what, got.Timestamp)
	}
	if got.Reason != "" {
		t.Errorf("%s: Reason %q on a %v invalidation", what, got.Reason, got.Kind)
	}
}

func testInvKeyReachesEveryOther(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	recs := make([]*recorder[coord.Invalidation], 3)
	for i, in := range ins {
		recs[i], _ = subInv(t, in)
	}
	must(t, ins[0].Invalidator().Invalidate(ctx, "user:42", map[string]any{"v": 7}), "Invalidate")
	eventually(t, tm.delivery, func() bool { return recs[1].len() >= 1 && recs[2].len() >= 1 }, "B and C receive")
	for i := 1; i < 3; i++ {
		got := recs[i].all()[0]
		checkInvFrom(t, tm, fmt.Sprintf("instance %d", i), got, coord.KeyInvalidation, "user:42", ins[0])
		if string(got.Metadata) != `{"v":7}` {
			t.Errorf("Metadata = %s, want {\"v\":7}", got.Metadata)
		}
		if !got.Matches("user:42") || got.Matches("user:4") {
			t.Errorf("Matches is wrong for %+v", got)
		}
	}
	invFence(t, tm, ins[1], "marker", recs[0], recs[2])
	if got := keysOf(recs[0].all()); !slices.Equal(got, []string{"marker"}) {
		t.Errorf("the sender received %v, want only the marker from another instance", got)
	}
	invFence(t, tm, ins[2], "marker2", recs[0], recs[1])
	if got := keysOf(recs[1].all()); !slices.Equal(got, []string{"user:42", "marker2"}) {
		t.Errorf("instance 1 received %v", got)
	}
}

func testInvPatternReachesEveryOther(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	recs := make([]*recorder[coord.Invalidation], 3)
	for i, in := range ins {
		recs[i], _ = subInv(t, in)
	}
	must(t, ins[1].Invalidator().InvalidatePattern(ctx, "user:*", "why"), "InvalidatePattern")
	eventually(t, tm.delivery, func() bool { return recs[0].len() >= 1 && recs[2].len() >= 1 }, "A and C receive")
	for _, i := range []int{0, 2} {
		got := recs[i].all()[0]
		checkInvFrom(t, tm, fmt.Sprintf("instance %d", i), got, coord.PatternInvalidation, "user:*", ins[1])
		if string(got.Metadata) != `"why"` {
			t.Errorf("Metadata = %s", got.Metadata)
		}
		if !got.Matches("user:a/b") || got.Matches("session:1") {
			t.Errorf("Matches is wrong for pattern %q", got.Key)
		}
	}
	invFence(t, tm, ins[0], "marker", recs[1])
	if got := keysOf(recs[1].all()); !slices.Equal(got, []string{"marker"}) {
		t.Errorf("the sender received %v, want only the marker from another instance", got)
	}
}

func testInvIncludeOwn(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	own, _ := subInv(t, ins[0], coord.IncludeOwn())
	plain, _ := subInv(t, ins[0])
	must(t, ins[0].Invalidator().Invalidate(ctx, "mine", nil), "Invalidate")
	must(t, ins[0].Invalidator().InvalidatePattern(ctx, "mine:*", nil), "InvalidatePattern")
	eventually(t, tm.delivery, func() bool { return own.len() >= 2 }, "own invalidations with IncludeOwn")
	invFence(t, tm, ins[1], "theirs", own, plain)
	if got := keysOf(own.all()); !slices.Equal(got, []string{"mine", "mine:*", "theirs"}) {
		t.Errorf("IncludeOwn subscriber received %v", got)
	}
	if got := keysOf(plain.all()); !slices.Equal(got, []string{"theirs"}) {
		t.Errorf("subscriber without IncludeOwn received %v, want only [theirs]", got)
	}
	if got := own.all()[0].InstanceID; got != ins[0].InstanceID() {
		t.Errorf("own invalidation has InstanceID %q", got)
	}
}

func testInvMetadataRoundTrip(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	rec, _ := subInv(t, ins[1])
	metas := payloadSamples()
	for i, m := range metas {
		must(t, ins[0].Invalidator().Invalidate(ctx, "k"+strconv.Itoa(i), m), "Invalidate")
	}
	must(t, ins[0].Invalidator().Invalidate(ctx, "nil", nil), "Invalidate")
	eventually(t, tm.delivery, func() bool { return rec.len() >= len(metas)+1 }, "all invalidations")
	got := rec.all()
	for i, m := range metas {
		want, err := driver.EncodePayload(m, 0)
		must(t, err, "EncodePayload")
		if string(got[i].Metadata) != string(want) {
			t.Errorf("metadata %d = %s, want %s", i, got[i].Metadata, want)
		}
	}
	if m := got[len(metas)].Metadata; len(m) != 0 {
		t.Errorf("nil metadata arrived as %s, want empty", m)
	}
}

// payloadSamples are values whose JSON must arrive byte for byte.
func payloadSamples() []any {
	type point struct {
		X, Y int64
		Tag  string `json:"tag,omitempty"`
	}
	return []any{
		int64(1234567890123456789),
		uint64(math.MaxUint64),
		"héllo ☃ 😀 \"q\" \\ \n <&> \u2028",
		map[string]any{"nested": []any{1, "two", map[string]any{"three": 3.5}}, "null": nil},
		point{X: 1, Y: -2, Tag: "t"},
		[]string{},
		true,
		json.RawMessage(`{ "spaced" : [ 1 , 2 ] , "exp": 1E+3, "big": 123456789012345678901234567890 }`),
		json.RawMessage(`"\u00e9\ud83d\ude00"`),
		strings.Repeat("é", 20000),
	}
}

// checkOrder checks that seqs from one publisher arrive in order: got
// holds "publisher/index" strings.
func checkOrder(t *testing.T, got []string, publishers []string, n int) {
	t.Helper()
	next := map[string]int{}
	for _, g := range got {
		p, idx, ok := strings.Cut(g, "/")
		if !ok {
			t.Errorf("unexpected message %q", g)
			continue
		}
		i, _ := strconv.Atoi(idx)
		if i != next[p] {
			t.Fatalf("from publisher %s: got message %d, want %d (out of order or lost)", p, i, next[p])
		}
		next[p]++
	}
	for _, p := range publishers {
		if next[p] != n {
			t.Errorf("from publisher %s: %d of %d messages", p, next[p], n)
		}
	}
}

func testInvOrder(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	rec, _ := subInv(t, ins[2])
	const n = 300
	var wg sync.WaitGroup
	for p := 0; p < 2; p++ {
		wg.Go(func() {
			for i := 0; i < n; i++ {
				var err error
				if i%3 == 0 {
					err = ins[p].Invalidator().InvalidatePattern(ctx, fmt.Sprintf("p%d/%d", p, i), nil)
				} else {
					err = ins[p].Invalidator().Invalidate(ctx, fmt.Sprintf("p%d/%d", p, i), nil)
				}
				if err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	eventually(t, tm.delivery, func() bool { return rec.len() >= 2*n }, "%d invalidations (got %d)", 2*n, rec.len())
	checkOrder(t, keysOf(rec.all()), []string{"p0", "p1"}, n)
}

func testInvOnlyKey(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	only, _ := subInv(t, ins[1], coord.OnlyKey("user:42"))
	all, _ := subInv(t, ins[1])
	inv := ins[0].Invalidator()
	must(t, inv.Invalidate(ctx, "user:1", nil), "Invalidate")
	must(t, inv.Invalidate(ctx, "user:42", nil), "Invalidate")
	must(t, inv.Invalidate(ctx, "user:420", nil), "Invalidate")
	must(t, inv.InvalidatePattern(ctx, "user:4?", nil), "InvalidatePattern")
	must(t, inv.InvalidatePattern(ctx, "session:*", nil), "InvalidatePattern")
	must(t, inv.InvalidatePattern(ctx, "user:*", nil), "InvalidatePattern")
	must(t, inv.InvalidatePattern(ctx, "user:[0-3]2", nil), "InvalidatePattern")
	must(t, inv.Invalidate(ctx, "user:42", "end"), "Invalidate")
	eventually(t, tm.delivery, func() bool { return all.len() >= 8 && only.len() >= 4 }, "deliveries")
	want := []string{"user:42", "user:4?", "user:*", "user:42"}
	if got := keysOf(only.all()); !slices.Equal(got, want) {
		t.Errorf("OnlyKey(user:42) received %v, want %v", got, want)
	}
	if got := all.len(); got != 8 {
		t.Errorf("unfiltered subscriber received %d, want 8", got)
	}
}

func testInvGlob(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	recs := map[string]*recorder[coord.Invalidation]{}
	for _, k := range globKeys {
		recs[k], _ = subInv(t, ins[1], coord.OnlyKey(k))
	}
	for _, c := range globCases {
		must(t, ins[0].Invalidator().InvalidatePattern(ctx, c.pattern, nil), "InvalidatePattern "+c.pattern)
	}
	for _, k := range globKeys {
		must(t, ins[0].Invalidator().Invalidate(ctx, k, "end"), "Invalidate")
	}
	eventually(t, tm.delivery, func() bool {
		for _, k := range globKeys {
			if !recs[k].any(hasKey(k)) {
				return false
			}
		}
		return true
	}, "end markers")
	for _, k := range globKeys {
		var want []string
		for _, c := range globCases {
			if slices.Contains(c.matches, k) {
				want = append(want, c.pattern)
			}
		}
		want = append(want, k)
		if got := keysOf(recs[k].all()); !slices.Equal(got, want) {
			t.Errorf("OnlyKey(%q) received patterns %q, want %q (Redis glob rules)", k, got, want)
		}
	}
}

func testInvSubscribeActive(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	for i := 0; i < 20; i++ {
		rec, sub := subInv(t, ins[1])
		key := "active-" + strconv.Itoa(i)
		must(t, ins[0].Invalidator().Invalidate(ctx, key, nil), "Invalidate")
		eventually(t, tm.delivery, func() bool { return rec.any(hasKey(key)) },
			"an invalidation published right after Subscribe returned is delivered (round %d)", i)
		sub.Unsubscribe()
	}
}

func testInvUnsubscribe(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	gone, sub := subInv(t, ins[1])
	stay, _ := subInv(t, ins[1])
	invFence(t, tm, ins[0], "before", gone, stay)
	sub.Unsubscribe()
	if !closedWithin(sub.Done(), tm.prompt) {
		t.Errorf("Done not closed after Unsubscribe")
	}
	sub.Unsubscribe() // idempotent
	must(t, ins[0].Invalidator().Invalidate(ctx, "after", nil), "Invalidate")
	invFence(t, tm, ins[0], "fence", stay)
	if got := keysOf(gone.all()); !slices.Equal(got, []string{"before"}) {
		t.Errorf("an unsubscribed handler received %v", got)
	}
	if got := keysOf(stay.all()); !slices.Equal(got, []string{"before", "after", "fence"}) {
		t.Errorf("the other subscription received %v", got)
	}
}

func testInvContextEnds(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	sctx, cancel := context.WithCancel(ctx)
	rec := &recorder[coord.Invalidation]{}
	sub, err := ins[1].Invalidator().Subscribe(sctx, rec.add)
	must(t, err, "Subscribe")
	stay, _ := subInv(t, ins[1])
	invFence(t, tm, ins[0], "before", rec, stay)
	cancel()
	if !closedWithin(sub.Done(), tm.ended) {
		t.Fatalf("Done not closed within %v of the subscription's ctx ending", tm.ended)
	}
	invFence(t, tm, ins[0], "after", stay)
	if got := keysOf(rec.all()); !slices.Equal(got, []string{"before"}) {
		t.Errorf("a subscription whose ctx ended received %v", got)
	}
	// A subscription made with an ended ctx ends at once (or is refused).
	sub2, err := ins[1].Invalidator().Subscribe(sctx, rec.add)
	if err == nil && !closedWithin(sub2.Done(), tm.ended) {
		t.Errorf("a subscription made with a cancelled ctx is live")
	}
}

func testInvUnsubscribeInHandler(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	var mu sync.Mutex
	var sub coord.Subscription
	calls := 0
	ready := make(chan struct{})
	s, err := ins[1].Invalidator().Subscribe(ctx, func(coord.Invalidation) {
		<-ready
		mu.Lock()
		calls++
		mu.Unlock()
		sub.Unsubscribe()
	})
	must(t, err, "Subscribe")
	sub = s
	close(ready)
	stay, _ := subInv(t, ins[1])
	for i := 0; i < 5; i++ {
		must(t, ins[0].Invalidator().Invalidate(ctx, "k"+strconv.Itoa(i), nil), "Invalidate")
	}
	if !closedWithin(sub.Done(), tm.ended) {
		t.Fatalf("Unsubscribe from within the handler did not end the subscription within %v", tm.ended)
	}
	invFence(t, tm, ins[0], "fence", stay)
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Errorf("handler called %d times after it unsubscribed on the first call", calls)
	}
}

func testInvPanic(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	survivor := &recorder[coord.Invalidation]{}
	_, err := ins[1].Invalidator().Subscribe(ctx, func(i coord.Invalidation) {
		if i.Key == "boom" {
			panic("handler panic (expected by the test)")
		}
		survivor.add(i)
	})
	must(t, err, "Subscribe")
	other, _ := subInv(t, ins[1])
	remote, _ := subInv(t, ins[2])
	must(t, ins[0].Invalidator().Invalidate(ctx, "boom", nil), "Invalidate")
	must(t, ins[0].Invalidator().Invalidate(ctx, "after", nil), "Invalidate")
	eventually(t, tm.delivery, func() bool { return survivor.any(hasKey("after")) },
		"the panicking subscription keeps receiving")
	eventually(t, tm.delivery, func() bool { return other.len() == 2 && remote.len() == 2 }, "other subscribers receive both")
	eventually(t, tm.prompt, func() bool { return ins[1].Invalidator().Stats().Panics == 1 }, "Stats().Panics = 1 (got %d)", ins[1].Invalidator().Stats().Panics)
}

func testInvBlocked(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	g := newGate(t)
	blocked := newSignal()
	_, err := ins[1].Invalidator().Subscribe(ctx, func(coord.Invalidation) { blocked.fire(); g.wait() })
	must(t, err, "Subscribe")
	same, _ := subInv(t, ins[1])
	remote, _ := subInv(t, ins[2])
	const n = 50
	for i := 0; i < n; i++ {
		must(t, ins[0].Invalidator().Invalidate(ctx, "k"+strconv.Itoa(i), nil), "Invalidate")
	}
	if !closedWithin(blocked.ch, tm.delivery) {
		t.Fatal("the blocking handler was never called")
	}
	eventually(t, tm.delivery, func() bool { return same.len() == n && remote.len() == n },
		"subscribers next to a blocked one receive all %d (same instance %d, other %d)", n, func() any { return same.len() }, func() any { return remote.len() })
	g.open()
}

// checkNoSilentSkip checks a subscriber's sequence of invalidations
// "<prefix><i>" (i < n): every key missing must be followed, after
// everything delivered before it, by a PurgeAll with a Reason.
func checkNoSilentSkip(t *testing.T, got []coord.Invalidation, n int, prefix string) {
	t.Helper()
	for _, inv := range got {
		if inv.Kind == coord.PurgeAll && inv.Reason == "" {
			t.Errorf("PurgeAll without a Reason")
		}
	}
	if i := silentSkip(got, n, prefix); i >= 0 {
		t.Fatalf("%s%d was never delivered and no PurgeAll followed the gap: a silent skip (got %v)", prefix, i, keysOf(got))
	}
}

// silentSkip returns the first i < n whose key "<prefix><i>" is missing
// from got with no PurgeAll after every delivery of a lower index, or -1.
func silentSkip(got []coord.Invalidation, n int, prefix string) int {
	pos := map[int]int{}
	var purges []int
	for p, inv := range got {
		if inv.Kind == coord.PurgeAll {
			purges = append(purges, p)
			continue
		}
		if rest, ok := strings.CutPrefix(inv.Key, prefix); ok {
			if i, err := strconv.Atoi(rest); err == nil {
				pos[i] = p
			}
		}
	}
	lastBefore := -1 // position of the latest delivery of a lower index
	for i := 0; i < n; i++ {
		if p, ok := pos[i]; ok {
			lastBefore = max(lastBefore, p)
			continue
		}
		if !slices.ContainsFunc(purges, func(p int) bool { return p > lastBefore }) {
			return i
		}
	}
	return -1
}

func testInvOverflow(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	g := newGate(t)
	rec := &recorder[coord.Invalidation]{}
	blocked := newSignal()
	_, err := ins[1].Invalidator().Subscribe(ctx, func(i coord.Invalidation) {
		blocked.fire()
		g.wait()
		rec.add(i)
	}, coord.WithQueueSize(2))
	must(t, err, "Subscribe")
	const n = 60
	for i := 0; i < n; i++ {
		must(t, ins[0].Invalidator().Invalidate(ctx, "k"+strconv.Itoa(i), nil), "Invalidate")
	}
	if !closedWithin(blocked.ch, tm.delivery) {
		t.Fatal("handler never called")
	}
	eventually(t, tm.delivery, func() bool { return ins[1].Invalidator().Stats().Dropped > 0 },
		"a queue of 2 behind a blocked handler overflows and counts drops (Stats %+v)", func() any { return ins[1].Invalidator().Stats() })
	g.open()
	// Once there is room again, a PurgeAll arrives, and delivery goes on.
	eventually(t, tm.delivery, func() bool { return rec.any(isPurge) }, "PurgeAll after an overflow")
	// Delivery is at most once: a reconnect may lose a marker (and send a
	// PurgeAll instead), so the marker is sent again until one arrives.
	retrying(t, tm.delivery, func() bool {
		must(t, ins[0].Invalidator().Invalidate(ctx, "end", nil), "Invalidate")
		return within(tm.resend, func() bool { return rec.any(hasKey("end")) })
	}, "delivery resumes after the overflow")
	got := rec.all()
	checkNoSilentSkip(t, got, n, "k")
	st := ins[1].Invalidator().Stats()
	if st.Purges == 0 {
		t.Errorf("Stats().Purges = 0 after an overflow purge")
	}
	delivered := 0
	for _, i := range got {
		if i.Kind != coord.PurgeAll && strings.HasPrefix(i.Key, "k") {
			delivered++
		}
	}
	if int(st.Dropped) < n-delivered {
		t.Errorf("Stats().Dropped = %d, but %d of %d invalidations were not delivered", st.Dropped, n-delivered, n)
	}
}

func testInvConcurrent(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 4)
	ctx := ctxOf(t)
	rec, _ := subInv(t, ins[3])
	const perG, gs = 30, 9
	var wg sync.WaitGroup
	for g := 0; g < gs; g++ {
		wg.Go(func() {
			for i := 0; i < perG; i++ {
				if err := ins[g%3].Invalidator().Invalidate(ctx, fmt.Sprintf("g%d/%d", g, i), nil); err != nil {
					t.Errorf("Invalidate: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	eventually(t, tm.delivery, func() bool { return rec.len() >= gs*perG }, "all %d invalidations (got %d)", gs*perG, rec.len())
	var pubs []string
	for g := 0; g < gs; g++ {
		pubs = append(pubs, fmt.Sprintf("g%d", g))
	}
	// Each goroutine published in sequence, so its order holds too.
	checkOrder(t, keysOf(rec.all()), pubs, perG)
}

func testInvStats(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	recB, _ := subInv(t, ins[1])
	_, _ = subInv(t, ins[1]) // two subscribers, one message: Received counts it once
	for i := 0; i < 4; i++ {
		must(t, ins[0].Invalidator().Invalidate(ctx, "k"+strconv.Itoa(i), nil), "Invalidate")
	}
	must(t, ins[0].Invalidator().InvalidatePattern(ctx, "k*", nil), "InvalidatePattern")
	eventually(t, tm.delivery, func() bool { return recB.len() == 5 }, "deliveries")
	if st := ins[0].Invalidator().Stats(); st.Sent != 5 {
		t.Errorf("sender's Stats().Sent = %d, want 5", st.Sent)
	}
	eventually(t, tm.prompt, func() bool { return ins[1].Invalidator().Stats().Received == 5 },
		"receiver's Stats().Received = 5 (got %+v)", func() any { return ins[1].Invalidator().Stats() })
	st := ins[1].Invalidator().Stats()
	if st.Dropped != 0 || st.Malformed != 0 || st.Panics != 0 || st.Purges != 0 || st.Sent != 0 {
		t.Errorf("receiver's Stats = %+v, want only Received", st)
	}
	if st := ins[2].Invalidator().Stats(); st.Received != 0 {
		t.Errorf("an instance without subscribers counts Received = %d", st.Received)
	}
}

func testInvBadInput(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	rec, _ := subInv(t, ins[1])
	inv := ins[0].Invalidator()
	invalid := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
	for label, n := range badNames() {
		invalid("Invalidate with key "+label, inv.Invalidate(ctx, n, nil))
		invalid("InvalidatePattern with glob "+label, inv.InvalidatePattern(ctx, n, nil))
		_, err := inv.Subscribe(ctx, func(coord.Invalidation) {}, coord.OnlyKey(n))
		invalid("Subscribe with OnlyKey "+label, err)
	}
	for _, g := range []string{"user:[a", "user:[", "user:\\", "[^", "a[b\\]"} {
		invalid(fmt.Sprintf("InvalidatePattern(%q)", g), inv.InvalidatePattern(ctx, g, nil))
	}
	for label, m := range badPayloads() {
		invalid("Invalidate with metadata "+label, inv.Invalidate(ctx, "k", m))
		invalid("InvalidatePattern with metadata "+label, inv.InvalidatePattern(ctx, "k*", m))
	}
	for _, q := range []int{0, -1} {
		_, err := inv.Subscribe(ctx, func(coord.Invalidation) {}, coord.WithQueueSize(q))
		invalid(fmt.Sprintf("Subscribe with queue size %d", q), err)
	}
	invFence(t, tm, ins[0], "fence", rec)
	if got := keysOf(rec.all()); !slices.Equal(got, []string{"fence"}) {
		t.Errorf("refused invalidations were delivered: %v", got)
	}
	if st := inv.Stats(); st.Sent != 1 {
		t.Errorf("Stats().Sent = %d after refused invalidations and one good one, want 1", st.Sent)
	}
}

// badPayloads are values EncodePayload refuses.
func badPayloads() map[string]any {
	return map[string]any{
		"channel":          make(chan int),
		"function":         func() {},
		"NaN":              math.NaN(),
		"-Inf":             math.Inf(-1),
		"invalid raw JSON": json.RawMessage(`{"a":1`),
		"raw not JSON":     json.RawMessage(`hello`),
		"over 1MiB":        strings.Repeat("x", driver.DefaultMaxPayload),
		"map with NaN":     map[string]any{"ok": 1, "bad": math.NaN()},
	}
}

func testInvCut(t *testing.T, h Harness) {
	tm := timingOf(h)
	cutter, ok := h.(SubscriptionCutter)
	if !ok {
		t.Fatalf("harness %T declares CutSubscription but does not implement SubscriptionCutter", h)
	}
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	all, _ := subInv(t, ins[1])
	only, _ := subInv(t, ins[1], coord.OnlyKey("k3"))
	control, _ := subInv(t, ins[2])
	invFence(t, tm, ins[0], "before", all, control)
	purgesBefore := ins[1].Invalidator().Stats().Purges

	cutter.CutSubscription(t, ins[1])
	const n = 10
	for i := 0; i < n; i++ {
		must(t, ins[0].Invalidator().Invalidate(ctx, "k"+strconv.Itoa(i), nil), "Invalidate")
	}
	eventually(t, tm.reconnect, func() bool { return all.any(isPurge) && only.any(isPurge) },
		"every invalidation subscriber of the cut instance gets a PurgeAll (all: %v, OnlyKey: %v)", func() any { return keysOf(all.all()) }, func() any { return keysOf(only.all()) })
	retrying(t, tm.reconnect, func() bool {
		must(t, ins[0].Invalidator().Invalidate(ctx, "after", nil), "Invalidate")
		return all.any(hasKey("after"))
	}, "delivery resumes after the cut")
	got := all.all()
	if got[0].Key != "before" {
		t.Fatalf("first invalidation %v, want before", keysOf(got[:1]))
	}
	checkNoSilentSkip(t, got[1:], n, "k")
	if ins[1].Invalidator().Stats().Purges < purgesBefore+2 {
		t.Errorf("Stats().Purges = %d, want at least %d (two subscribers purged)", ins[1].Invalidator().Stats().Purges, purgesBefore+2)
	}
	if control.any(isPurge) {
		t.Errorf("an instance whose subscription was not cut got a PurgeAll")
	}
	eventually(t, tm.delivery, func() bool { return control.any(hasKey("after")) }, "the uncut instance receives all")
	got = control.all()
	if got[0].Key != "before" {
		t.Fatalf("control: first invalidation %v, want before", keysOf(got[:1]))
	}
	if i := silentSkip(got[1:], n, "k"); i >= 0 {
		t.Errorf("the uncut instance missed k%d: %v", i, keysOf(got))
	}
}

// testInvCutGapNotice: a subscriber made with NotifyGaps gets a GapStart
// once the cut is noticed, then the PurgeAll "reconnect" that ends the
// gap, in that order and with nothing between them but invalidations; a
// subscriber without it gets only the PurgeAll.
func testInvCutGapNotice(t *testing.T, h Harness) {
	tm := timingOf(h)
	cutter, ok := h.(SubscriptionCutter)
	if !ok {
		t.Fatalf("harness %T declares CutSubscription but does not implement SubscriptionCutter", h)
	}
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	gaps, _ := subInv(t, ins[1], coord.NotifyGaps())
	plain, _ := subInv(t, ins[1])
	invFence(t, tm, ins[0], "before", gaps, plain)
	cutter.CutSubscription(t, ins[1])
	isGap := func(i coord.Invalidation) bool { return i.Kind == coord.GapStart }
	eventually(t, tm.reconnect, func() bool { return gaps.any(isGap) }, "a GapStart after the cut (got %v)", func() any { return gaps.all() })
	eventually(t, tm.reconnect, func() bool { return gaps.any(isPurge) && plain.any(isPurge) }, "the PurgeAll that ends the gap")
	retrying(t, tm.reconnect, func() bool {
		must(t, ins[0].Invalidator().Invalidate(ctx, "after", nil), "Invalidate")
		return gaps.any(hasKey("after"))
	}, "delivery resumes after the cut")
	gapAt, endAt := -1, -1
	for i, inv := range gaps.all() {
		switch {
		case inv.Kind == coord.GapStart && gapAt < 0:
			gapAt = i
		case inv.Kind == coord.PurgeAll && inv.Reason == coord.ReasonReconnect && gapAt >= 0 && endAt < 0:
			endAt = i
		}
	}
	if gapAt < 0 || endAt < 0 {
		t.Fatalf("NotifyGaps subscriber got %v, want a GapStart, then a PurgeAll %q", gaps.all(), coord.ReasonReconnect)
	}
	if plain.any(func(i coord.Invalidation) bool { return i.Kind == coord.GapStart }) {
		t.Errorf("a subscriber without NotifyGaps got a GapStart: %v", plain.all())
	}
}

func foreign(t *testing.T, h Harness) ForeignPublisher {
	t.Helper()
	fp, ok := h.(ForeignPublisher)
	if !ok {
		t.Fatalf("harness %T declares ForeignPublish but does not implement ForeignPublisher", h)
	}
	return fp
}

// testInvForeignMalformed: a message on the invalidation channels that
// cannot be accepted is counted and dropped, and a dropped invalidation
// is a gap: subscribers get a PurgeAll "malformed", at most one per second
// (leading and trailing: a burst gets at most two), and the last
// malformed message is always followed by one.
func testInvForeignMalformed(t *testing.T, h Harness) {
	tm := timingOf(h)
	fp := foreign(t, h)
	ins := instances(t, h, 2)
	rec, _ := subInv(t, ins[1])
	invFence(t, tm, ins[0], "before", rec)
	bad := map[string][]string{
		"invalidate": {
			`not json`,
			`{"instanceId":"x","cacheKey":`,
			`[1,2]`,
			`{"instanceId":"x","timestamp":1700000000000}`,
			`{"instanceId":"x","cacheKey":"","timestamp":1700000000000}`,
			`{"instanceId":"x","cacheKey":7,"timestamp":1700000000000}`,
			"\xff\xfe",
			`{"instanceId":"x","cacheKey":"` + strings.Repeat("k", 4096) + `","timestamp":1700000000000}`,
			`{"instanceId":"x","cacheKey":"a\u0001b","timestamp":1700000000000}`,
			`{"instanceId":"x","cacheKey":"k","timestamp":"1700000000000"}`,
		},
		"pattern": {
			`{{{`,
			`{"instanceId":"x","cacheKey":"user:[","timestamp":1700000000000}`,
			`{"instanceId":"x","cacheKey":"v:[a-","timestamp":1700000000000}`,
			`""`,
		},
	}
	total := 0
	start := time.Now()
	for _, ch := range []string{"invalidate", "pattern"} {
		for _, m := range bad[ch] {
			fp.PublishRaw(t, ch, []byte(m))
			total++
		}
	}
	sent := time.Since(start)
	eventually(t, tm.delivery, func() bool { return ins[1].Invalidator().Stats().Malformed >= uint64(total) },
		"%d malformed messages counted (Stats %+v)", total, func() any { return ins[1].Invalidator().Stats() })
	eventually(t, tm.delivery, func() bool { return rec.any(isPurge) }, "a PurgeAll after malformed invalidations")
	invFence(t, tm, ins[0], "after", rec)
	var keys []string
	purges := 0
	for _, inv := range rec.all() {
		if inv.Kind == coord.PurgeAll {
			purges++
			if inv.Reason != coord.ReasonMalformed {
				t.Errorf("PurgeAll reason %q, want %q", inv.Reason, coord.ReasonMalformed)
			}
			continue
		}
		keys = append(keys, inv.Key)
	}
	if !slices.Equal(keys, []string{"before", "after"}) {
		t.Errorf("subscriber received %v around malformed messages, want [before after]", keysOf(rec.all()))
	}
	if got := keysOf(rec.all()); got[0] != "before" || !strings.HasPrefix(got[1], "<purge:") {
		t.Errorf("deliveries %v: want the PurgeAll right after the last good invalidation", got)
	}
	// Rate limit: all were published within sent; one PurgeAll per
	// second, the first at once and one owed at the end of the second.
	if limit := 2 + int(sent/tm.purgeEvery); purges > limit {
		t.Errorf("%d PurgeAlls for %d malformed messages published within %v, want at most %d (one per second)", purges, total, sent, limit)
	}
	if purges < 2 && sent < tm.purgeEvery {
		// The messages after the first PurgeAll are owed one: it comes
		// within a second and the delivery bound.
		eventually(t, tm.purgeEvery+tm.delivery, func() bool {
			n := 0
			for _, inv := range rec.all() {
				if isPurge(inv) {
					n++
				}
			}
			return n >= 2
		}, "a trailing PurgeAll covering the malformed messages after the first")
	}
}

func testInvForeignWellFormed(t *testing.T, h Harness) {
	tm := timingOf(h)
	fp := foreign(t, h)
	ins := instances(t, h, 1)
	rec, _ := subInv(t, ins[0])
	fp.PublishRaw(t, "invalidate", []byte(`{"instanceId":"node-legacy","cacheKey":"user:1","metadata":{"by":"node"},"timestamp":1700000000123}`))
	fp.PublishRaw(t, "pattern", []byte(`{"instanceId":"node-legacy","cacheKey":"user:*","metadata":null,"timestamp":1700000000456}`))
	eventually(t, tm.delivery, func() bool { return rec.len() >= 2 }, "messages in the Node fleet's wire format are delivered")
	got := rec.all()
	if got[0].Kind != coord.KeyInvalidation || got[0].Key != "user:1" || got[0].InstanceID != "node-legacy" ||
		string(got[0].Metadata) != `{"by":"node"}` || !got[0].Timestamp.Equal(time.UnixMilli(1700000000123)) {
		t.Errorf("key invalidation from the wire = %+v", got[0])
	}
	if got[1].Kind != coord.PatternInvalidation || got[1].Key != "user:*" || got[1].InstanceID != "node-legacy" ||
		!got[1].Timestamp.Equal(time.UnixMilli(1700000000456)) {
		t.Errorf("pattern invalidation from the wire = %+v", got[1])
	}
	// A message carrying this instance's own ID is its own: not delivered.
	fp.PublishRaw(t, "invalidate", []byte(`{"instanceId":"`+ins[0].InstanceID()+`","cacheKey":"own","timestamp":1700000000000}`))
	fp.PublishRaw(t, "invalidate", []byte(`{"instanceId":"node-legacy","cacheKey":"last","timestamp":1700000000000}`))
	eventually(t, tm.delivery, func() bool { return rec.any(hasKey("last")) }, "last message")
	if rec.any(hasKey("own")) {
		t.Errorf("a message with this instance's ID was delivered to it")
	}
}
