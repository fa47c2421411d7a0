package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// RunStreams runs the cases about [coord.Streams]; they are skipped when
// the harness declares [Streams] unsupported.
func RunStreams(t *testing.T, maker HarnessMaker) {
	t.Helper()
	runCases(t, maker, streamCases())
}

func streamCases() []testCase {
	return []testCase{
		{name: "AppendIDsIncrease", run: testStreamAppendIDsIncrease},
		{name: "RangeReplays", run: testStreamRangeReplays},
		{name: "PayloadRoundTrip", run: testStreamPayloadRoundTrip},
		{name: "TraceTravels", run: testStreamTraceTravels},
		{name: "GroupGetsEveryEntry", run: testStreamGroupGetsEveryEntry},
		{name: "GroupSplitsWork", run: testStreamGroupSplitsWork},
		{name: "GroupsIndependent", run: testStreamGroupsIndependent},
		{name: "NewGroupStartsAtFirst", run: testStreamNewGroupAtFirst},
		{name: "NewGroupStartsAtLatest", run: testStreamNewGroupAtLatest},
		{name: "AckedNotRedelivered", run: testStreamAckedNotRedelivered},
		{name: "HandlerErrorRedelivered", run: testStreamHandlerErrorRedelivered},
		{name: "PanicRedeliveredAndCounted", run: testStreamPanicRedelivered},
		{name: "AbandonedConsumerClaimed", run: testStreamAbandonedClaimed},
		{name: "InFlightNotStolen", serial: true, run: testStreamInFlightNotStolen},
		{name: "MaxDeliveriesDeadLetters", run: testStreamDeadLetters},
		{name: "RestartGetsOwnPendingAtOnce", run: testStreamRestartOwnPending},
		{name: "ConsumerWithPendingKept", run: testStreamConsumerWithPendingKept},
		{name: "OrderedWithConcurrency1", run: testStreamOrdered},
		{name: "SlowHandlerIsolated", run: testStreamSlowHandlerIsolated},
		{name: "TrimByMaxLen", run: testStreamTrimByMaxLen},
		{name: "TrimByMaxAge", run: testStreamTrimByMaxAge},
		{name: "TrimmedWhilePendingCounted", run: testStreamTrimmedWhilePending},
		{name: "SafeTrimKeepsUnacked", run: testStreamSafeTrim},
		{name: "InfoLagAndPending", run: testStreamInfoLagAndPending},
		{name: "CloseWaitsForHandlers", serial: true, run: testStreamCloseWaits},
		{name: "CtxEndsConsumePromptly", serial: true, run: testStreamCtxEnds},
		{name: "ReconnectResumes", serial: true, needs: capRestart, run: testStreamReconnect},
		{name: "BadInput", run: testStreamBadInput},
	}
}

// streamsOf skips t when h lacks streams and returns n instances' streams.
func streamsOf(t *testing.T, h Harness, n int) []coord.Streams {
	t.Helper()
	requirePrimitive(t, h, Streams)
	out := make([]coord.Streams, n)
	for i, b := range instances(t, h, n) {
		out[i] = b.Streams()
	}
	return out
}

// appendN appends n entries {"n": i} and returns their IDs.
func appendN(t *testing.T, s coord.Streams, stream string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		id, err := s.Append(ctxOf(t), stream, map[string]int{"n": i})
		must(t, err, "Append")
		ids[i] = id
	}
	return ids
}

// parseID splits a stream ID into its two numbers.
func parseID(t *testing.T, id string) [2]uint64 {
	t.Helper()
	a, b, ok := strings.Cut(id, "-")
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("entry ID %q is not <ms>-<seq>", id)
	}
	return [2]uint64{x, y}
}

func idLess(t *testing.T, a, b string) bool {
	x, y := parseID(t, a), parseID(t, b)
	return x[0] < y[0] || x[0] == y[0] && x[1] < y[1]
}

// consume starts a subscription that ends with the test.
func consume(t *testing.T, s coord.Streams, stream, group string, fn func(context.Context, coord.StreamEntry) error, opts ...coord.ConsumeOption) coord.Subscription {
	t.Helper()
	sub, err := s.Consume(ctxOf(t), stream, group, fn, opts...)
	must(t, err, "Consume")
	if sub == nil {
		t.Fatal("Consume returned a nil Subscription")
	}
	t.Cleanup(sub.Unsubscribe)
	return sub
}

// tally counts deliveries by entry ID.
type tally struct {
	mu    sync.Mutex
	by    map[string]int
	order []string
	first map[string]coord.StreamEntry
	last  map[string]coord.StreamEntry
}

func newTally() *tally {
	return &tally{by: map[string]int{}, first: map[string]coord.StreamEntry{}, last: map[string]coord.StreamEntry{}}
}

func (c *tally) add(e coord.StreamEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by[e.ID] == 0 {
		c.first[e.ID] = e
	}
	c.by[e.ID]++
	c.order = append(c.order, e.ID)
	c.last[e.ID] = e
}

func (c *tally) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.by)
}

func (c *tally) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.order)
}

func (c *tally) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.by[id]
}

func (c *tally) lastOf(id string) coord.StreamEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last[id]
}

func (c *tally) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.by)
}

// acking returns a handler that records and acknowledges every entry.
func (c *tally) acking() func(context.Context, coord.StreamEntry) error {
	return func(_ context.Context, e coord.StreamEntry) error { c.add(e); return nil }
}

func info(t *testing.T, s coord.Streams, stream string) coord.StreamInfo {
	t.Helper()
	in, err := s.Info(ctxOf(t), stream)
	must(t, err, "Info")
	return in
}

func groupInfo(in coord.StreamInfo, group string) (coord.StreamGroupInfo, bool) {
	for _, g := range in.Groups {
		if g.Name == group {
			return g, true
		}
	}
	return coord.StreamGroupInfo{}, false
}

var errStreamTest = errors.New("handler failed on purpose")

func testStreamAppendIDsIncrease(t *testing.T, h Harness) {
	s := streamsOf(t, h, 2)
	ids := make([]string, 0, 60)
	for i := range 60 {
		id, err := s[i%2].Append(ctxOf(t), "log", i)
		must(t, err, "Append")
		ids = append(ids, id)
	}
	for i := 1; i < len(ids); i++ {
		if !idLess(t, ids[i-1], ids[i]) {
			t.Fatalf("entry %d has ID %s, not after %s", i, ids[i], ids[i-1])
		}
	}
	if in := info(t, s[0], "log"); in.Length != 60 || in.FirstID != ids[0] || in.LastID != ids[59] {
		t.Fatalf("Info = %+v, want Length 60, FirstID %s, LastID %s", in, ids[0], ids[59])
	}
}

func testStreamRangeReplays(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 1)
	requirePrimitive(t, h, Streams)
	s := ins[0].Streams()
	before := time.Now()
	ids := appendN(t, s, "log", 10)
	all, err := s.Range(ctxOf(t), "log", "", 100)
	must(t, err, "Range")
	if len(all) != 10 {
		t.Fatalf("Range from the start returned %d entries, want 10", len(all))
	}
	for i, e := range all {
		var v map[string]int
		if e.ID != ids[i] || e.Stream != "log" || e.InstanceID != ins[0].InstanceID() || e.Deliveries != 0 || jsonUnmarshal(e.Payload, &v) != nil || v["n"] != i {
			t.Fatalf("entry %d = %+v, want ID %s, payload n=%d from %s, Deliveries 0", i, e, ids[i], i, ins[0].InstanceID())
		}
		if d := e.Timestamp.Sub(before); d < -tm.clock || d > tm.clock {
			t.Fatalf("entry %d stamped %v, %v from now", i, e.Timestamp, d)
		}
	}
	part, err := s.Range(ctxOf(t), "log", ids[4], 3)
	must(t, err, "Range")
	if got := entryIDs(part); !slices.Equal(got, ids[4:7]) {
		t.Fatalf("Range(from %s, 3) = %v, want %v", ids[4], got, ids[4:7])
	}
	again, err := s.Range(ctxOf(t), "log", "-", 2)
	must(t, err, "Range")
	if got := entryIDs(again); !slices.Equal(got, ids[:2]) {
		t.Fatalf(`Range("-", 2) = %v, want %v`, got, ids[:2])
	}
	none, err := s.Range(ctxOf(t), "never", "", 5)
	must(t, err, "Range of a stream never appended to")
	if len(none) != 0 {
		t.Fatalf("Range of a stream never appended to returned %d entries", len(none))
	}
}

func entryIDs(es []coord.StreamEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func testStreamPayloadRoundTrip(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 1)[0]
	payloads := []struct {
		in   any
		want string
	}{
		{int64(9007199254740993), `9007199254740993`},
		{"ключ ☃ 名前", `"ключ ☃ 名前"`},
		{map[string]any{"a": []int{1, 2}}, `{"a":[1,2]}`},
		{json.RawMessage(`{"n":-0.5e3}`), `{"n":-0.5e3}`},
		{nil, `null`},
	}
	for _, p := range payloads {
		_, err := s.Append(ctxOf(t), "payloads", p.in)
		must(t, err, "Append")
	}
	got, err := s.Range(ctxOf(t), "payloads", "", 10)
	must(t, err, "Range")
	c := newTally()
	consume(t, s, "payloads", "g", c.acking())
	eventually(t, tm.delivery, func() bool { return c.distinct() == len(payloads) }, "%d of %d entries delivered", c.distinct, len(payloads))
	if len(got) != len(payloads) {
		t.Fatalf("Range returned %d entries, want %d", len(got), len(payloads))
	}
	for i, p := range payloads {
		if string(got[i].Payload) != p.want {
			t.Errorf("payload %d replayed as %s, want %s", i, got[i].Payload, p.want)
		}
		if d := c.lastOf(got[i].ID); string(d.Payload) != p.want {
			t.Errorf("payload %d delivered as %s, want %s", i, d.Payload, p.want)
		}
	}
}

func testStreamTraceTravels(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 2)
	carrier := coord.TraceCarrier{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	_, err := s[0].Append(coord.WithTrace(ctxOf(t), carrier), "traced", "x")
	must(t, err, "Append")
	c := newTally()
	consume(t, s[1], "traced", "g", c.acking())
	eventually(t, tm.delivery, func() bool { return c.distinct() == 1 }, "entry not delivered")
	// A tracing decorator may put spans of its own in between: the trace
	// (its ID, in the traceparent's second field) is what must travel.
	sameTrace := func(c coord.TraceCarrier) bool {
		return len(c["traceparent"]) >= 35 && c["traceparent"][:35] == carrier["traceparent"][:35]
	}
	for _, e := range c.snapshotEntries() {
		if !sameTrace(e.Trace) {
			t.Fatalf("delivered Trace = %v, want the trace of %v", e.Trace, carrier)
		}
	}
	got, err := s[1].Range(ctxOf(t), "traced", "", 1)
	must(t, err, "Range")
	if len(got) != 1 || !sameTrace(got[0].Trace) {
		t.Fatalf("replayed %+v, want the trace of %v", got, carrier)
	}
}

func (c *tally) snapshotEntries() []coord.StreamEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Collect(maps.Values(c.last))
}

func testStreamGroupGetsEveryEntry(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 2)
	c := newTally()
	consume(t, s[1], "work", "g", c.acking(), coord.ConsumeConcurrency(4))
	ids := appendN(t, s[0], "work", 40)
	eventually(t, tm.delivery, func() bool { return c.distinct() == len(ids) }, "%d of %d entries delivered", c.distinct, len(ids))
	for _, id := range ids {
		if n := c.count(id); n != 1 {
			t.Fatalf("entry %s delivered %d times, want once", id, n)
		}
		if e := c.lastOf(id); e.Deliveries != 1 {
			t.Fatalf("entry %s came with Deliveries %d, want 1", id, e.Deliveries)
		}
	}
}

func testStreamGroupSplitsWork(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 3)
	a, b := newTally(), newTally()
	slow := func(c *tally) func(context.Context, coord.StreamEntry) error {
		return func(ctx context.Context, e coord.StreamEntry) error {
			c.add(e)
			hold(ctx, tm.work)
			return nil
		}
	}
	consume(t, s[1], "work", "g", slow(a))
	consume(t, s[2], "work", "g", slow(b))
	ids := appendN(t, s[0], "work", 20)
	eventually(t, tm.delivery+time.Duration(len(ids))*tm.work, func() bool { return a.distinct()+b.distinct() == len(ids) },
		"%d and %d of %d entries delivered", a.distinct, b.distinct, len(ids))
	ga, gb := a.snapshot(), b.snapshot()
	for id := range ga {
		if gb[id] > 0 {
			t.Fatalf("entry %s went to both consumers", id)
		}
	}
	if len(ga) == 0 || len(gb) == 0 {
		t.Fatalf("one consumer did all the work: %d and %d entries", len(ga), len(gb))
	}
}

func testStreamGroupsIndependent(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 2)
	a, b := newTally(), newTally()
	consume(t, s[0], "fan", "audit", a.acking())
	consume(t, s[1], "fan", "billing", func(_ context.Context, e coord.StreamEntry) error {
		b.add(e)
		return errStreamTest // never acked in this group
	}, coord.ClaimAfter(tm.held))
	ids := appendN(t, s[0], "fan", 10)
	eventually(t, tm.delivery, func() bool { return a.distinct() == 10 && b.distinct() == 10 }, "audit got %d, billing %d of 10", a.distinct, b.distinct)
	in := info(t, s[0], "fan")
	ga, oka := groupInfo(in, "audit")
	gb, okb := groupInfo(in, "billing")
	if !oka || !okb {
		t.Fatalf("Info.Groups = %+v, want audit and billing", in.Groups)
	}
	eventually(t, tm.delivery, func() bool {
		in = info(t, s[0], "fan")
		ga, _ = groupInfo(in, "audit")
		gb, _ = groupInfo(in, "billing")
		return ga.Pending == 0 && gb.Pending == int64(len(ids))
	}, "pending: audit %d (want 0), billing %d (want %d)", func() any { return ga.Pending }, func() any { return gb.Pending }, len(ids))
}

func testStreamNewGroupAtFirst(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 1)[0]
	ids := appendN(t, s, "hist", 5)
	c := newTally()
	consume(t, s, "hist", "late", c.acking(), coord.StartAt(coord.FromFirst))
	eventually(t, tm.delivery, func() bool { return c.distinct() == 5 }, "%d of 5 earlier entries delivered", c.distinct)
	for _, id := range ids {
		if c.count(id) != 1 {
			t.Fatalf("entry %s delivered %d times", id, c.count(id))
		}
	}
}

func testStreamNewGroupAtLatest(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 1)[0]
	old := appendN(t, s, "hist", 5)
	c := newTally()
	consume(t, s, "hist", "late", c.acking(), coord.StartAt(coord.FromLatest))
	id, err := s.Append(ctxOf(t), "hist", "new")
	must(t, err, "Append")
	eventually(t, tm.delivery, func() bool { return c.count(id) == 1 }, "the entry appended after Consume was not delivered")
	for _, o := range old {
		if c.count(o) != 0 {
			t.Fatalf("entry %s, appended before the group, was delivered", o)
		}
	}
	// A later Consume with FromFirst joins the existing group: its start
	// is not moved back.
	c2 := newTally()
	consume(t, s, "hist", "late", c2.acking(), coord.StartAt(coord.FromFirst))
	id2, err := s.Append(ctxOf(t), "hist", "newer")
	must(t, err, "Append")
	eventually(t, tm.delivery, func() bool { return c.count(id2)+c2.count(id2) == 1 }, "the next entry was delivered %d and %d times, want once",
		func() any { return c.count(id2) }, func() any { return c2.count(id2) })
	if c2.count(old[0]) != 0 {
		t.Fatalf("joining the group with FromFirst replayed the entries before it")
	}
}

func testStreamAckedNotRedelivered(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 2)
	c := newTally()
	claim := tm.short
	consume(t, s[0], "acks", "g", c.acking(), coord.ClaimAfter(claim))
	consume(t, s[1], "acks", "g", c.acking(), coord.ClaimAfter(claim))
	ids := appendN(t, s[0], "acks", 10)
	eventually(t, tm.delivery, func() bool { return c.distinct() == len(ids) }, "%d of %d delivered", c.distinct, len(ids))
	hold(ctxOf(t), 4*claim)
	if got := c.total(); got != len(ids) {
		t.Fatalf("%d deliveries of %d acknowledged entries after 4 claim times: acked entries came back", got, len(ids))
	}
	eventually(t, tm.delivery, func() bool {
		g, _ := groupInfo(info(t, s[0], "acks"), "g")
		return g.Pending == 0 && g.Lag == 0
	}, "the group still has pending or unread entries")
}

// redeliveryCase runs a handler that fails its first delivery with fail,
// and checks the entry comes back after ClaimAfter with Deliveries 2.
func redeliveryCase(t *testing.T, h Harness, fail func() error) {
	tm := timingOf(h)
	s := streamsOf(t, h, 1)[0]
	claim := tm.short
	var mu sync.Mutex
	var times []time.Time
	var counts []int
	consume(t, s, "retry", "g", func(_ context.Context, e coord.StreamEntry) error {
		mu.Lock()
		times = append(times, time.Now())
		counts = append(counts, e.Deliveries)
		n := len(times)
		mu.Unlock()
		if n == 1 {
			return fail()
		}
		return nil
	}, coord.ClaimAfter(claim))
	appendN(t, s, "retry", 1)
	eventually(t, tm.delivery+claim, func() bool { mu.Lock(); defer mu.Unlock(); return len(times) >= 2 }, "the failed entry was not delivered again")
	mu.Lock()
	gap, c := times[1].Sub(times[0]), slices.Clone(counts)
	mu.Unlock()
	if !slices.Equal(c[:2], []int{1, 2}) {
		t.Fatalf("Deliveries = %v, want [1 2]", c)
	}
	if gap < claim-tm.stamp {
		t.Fatalf("redelivered %v after the first delivery, before ClaimAfter %v", gap, claim)
	}
	eventually(t, tm.delivery, func() bool {
		g, _ := groupInfo(info(t, s, "retry"), "g")
		return g.Pending == 0
	}, "the entry acknowledged on its second delivery is still pending")
}

func testStreamHandlerErrorRedelivered(t *testing.T, h Harness) {
	redeliveryCase(t, h, func() error { return errStreamTest })
}

func testStreamPanicRedelivered(t *testing.T, h Harness) {
	redeliveryCase(t, h, func() error { panic("handler panics on purpose") })
}

func testStreamAbandonedClaimed(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 2)
	claim := tm.short
	got := newSignal()
	ctxA, cancelA := context.WithCancel(ctxOf(t))
	defer cancelA()
	subA, err := s[0].Consume(ctxA, "jobs", "g", func(ctx context.Context, e coord.StreamEntry) error {
		got.fire()
		<-ctx.Done() // abandoned mid-entry
		return ctx.Err()
	}, coord.ConsumerName("a"), coord.ClaimAfter(claim))
	must(t, err, "Consume")
	id := appendN(t, s[0], "jobs", 1)[0]
	if !closedWithin(got.ch, tm.delivery) {
		t.Fatal("the entry did not reach the first consumer")
	}
	cancelA()
	if !closedWithin(subA.Done(), tm.ended) {
		t.Fatal("the first subscription did not end with its ctx")
	}
	c := newTally()
	consume(t, s[1], "jobs", "g", c.acking(), coord.ConsumerName("b"), coord.ClaimAfter(claim))
	eventually(t, tm.delivery+claim, func() bool { return c.count(id) == 1 }, "the abandoned entry was not claimed by the sibling")
	if e := c.lastOf(id); e.Deliveries != 2 {
		t.Fatalf("claimed entry came with Deliveries %d, want 2", e.Deliveries)
	}
}

func testStreamInFlightNotStolen(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 3)
	// The heartbeat at a third of it survives a stall of two thirds (530ms).
	claim := 2 * tm.lease
	var running, overlap, calls atomic.Int32
	fn := func(ctx context.Context, e coord.StreamEntry) error {
		calls.Add(1)
		if running.Add(1) > 1 {
			overlap.Add(1)
		}
		defer running.Add(-1)
		hold(ctx, 3*claim)
		return nil
	}
	consume(t, s[1], "long", "g", fn, coord.ConsumerName("a"), coord.ClaimAfter(claim))
	consume(t, s[2], "long", "g", fn, coord.ConsumerName("b"), coord.ClaimAfter(claim))
	appendN(t, s[0], "long", 1)
	eventually(t, tm.delivery, func() bool { return calls.Load() == 1 }, "the entry was not delivered")
	eventually(t, 3*claim+tm.delivery, func() bool {
		g, _ := groupInfo(info(t, s[0], "long"), "g")
		return g.Pending == 0
	}, "the entry was not acknowledged")
	hold(ctxOf(t), claim)
	if n, o := calls.Load(), overlap.Load(); n != 1 || o != 0 {
		t.Fatalf("a handler running 3×ClaimAfter was handed to another consumer: %d calls, %d overlapping", n, o)
	}
}

func testStreamDeadLetters(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 1)[0]
	claim := tm.short
	var calls atomic.Int32
	consume(t, s, "poison", "g", func(context.Context, coord.StreamEntry) error {
		calls.Add(1)
		return errStreamTest
	}, coord.ClaimAfter(claim), coord.MaxDeliveries(2))
	id, err := s.Append(ctxOf(t), "poison", map[string]string{"bad": "entry"})
	must(t, err, "Append")
	var dead []coord.StreamEntry
	eventually(t, tm.delivery+4*claim, func() bool {
		dead, err = s.DeadLetters(ctxOf(t), "poison", 10)
		return err == nil && len(dead) > 0
	}, "the entry was not dead-lettered (err %v)", func() any { return err })
	if len(dead) != 1 || dead[0].ID != id || string(dead[0].Payload) != `{"bad":"entry"}` || dead[0].Deliveries != 2 || dead[0].Stream != "poison" {
		t.Fatalf("dead letters = %+v, want one with ID %s, its payload and Deliveries 2", dead, id)
	}
	in := info(t, s, "poison")
	if g, _ := groupInfo(in, "g"); g.Pending != 0 || in.DeadLetters != 1 {
		t.Fatalf("after dead-lettering: group pending %d (want 0), DeadLetters %d (want 1)", g.Pending, in.DeadLetters)
	}
	hold(ctxOf(t), 3*claim)
	if n := calls.Load(); n != 2 {
		t.Fatalf("the handler was called %d times, want MaxDeliveries = 2", n)
	}
}

// failOnce starts consumer name on s, lets it fail the first entry
// appended, and ends it; it returns the entry's ID.
func failOnce(t *testing.T, s coord.Streams, stream, name string, claim time.Duration) string {
	t.Helper()
	got := newSignal()
	ctx, cancel := context.WithCancel(ctxOf(t))
	defer cancel()
	sub, err := s.Consume(ctx, stream, "g", func(context.Context, coord.StreamEntry) error {
		got.fire()
		return errStreamTest
	}, coord.ConsumerName(name), coord.ClaimAfter(claim))
	must(t, err, "Consume")
	id := appendN(t, s, stream, 1)[0]
	if !closedWithin(got.ch, 3*time.Second) {
		t.Fatal("the entry was not delivered")
	}
	sub.Unsubscribe()
	if !closedWithin(sub.Done(), 2*time.Second) {
		t.Fatal("Unsubscribe did not end the subscription")
	}
	return id
}

func testStreamRestartOwnPending(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 2)
	id := failOnce(t, s[0], "own", "stable", tm.held)
	c := newTally()
	start := time.Now()
	consume(t, s[1], "own", "g", c.acking(), coord.ConsumerName("stable"), coord.ClaimAfter(tm.held))
	eventually(t, tm.prompt, func() bool { return c.count(id) == 1 }, "the restarted consumer did not get its own pending entry at once")
	if e := c.lastOf(id); e.Deliveries != 2 {
		t.Fatalf("own pending entry came back with Deliveries %d, want 2", e.Deliveries)
	}
	if d := time.Since(start); d >= tm.held {
		t.Fatalf("own pending entry came back after %v, the claim time", d)
	}
}

func testStreamConsumerWithPendingKept(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 2)
	id := failOnce(t, s[0], "kept", "old", tm.held)
	other := newTally()
	consume(t, s[1], "kept", "g", other.acking(), coord.ConsumerName("other"), coord.ClaimAfter(tm.held))
	hold(ctxOf(t), tm.settle)
	in := info(t, s[1], "kept")
	g, ok := groupInfo(in, "g")
	if !ok || g.Pending != 1 || g.Consumers < 2 {
		t.Fatalf("group = %+v, want the consumer with a pending entry kept (Consumers ≥ 2, Pending 1)", g)
	}
	if other.count(id) != 0 {
		t.Fatal("another consumer got the entry before ClaimAfter")
	}
	back := newTally()
	consume(t, s[0], "kept", "g", back.acking(), coord.ConsumerName("old"), coord.ClaimAfter(tm.held))
	eventually(t, tm.prompt, func() bool { return back.count(id) == 1 }, "the old consumer's pending entry was lost")
}

func testStreamOrdered(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 2)
	ids := appendN(t, s[0], "seq", 30)
	c := newTally()
	consume(t, s[1], "seq", "g", c.acking(), coord.ConsumeConcurrency(1))
	ids = append(ids, appendN(t, s[0], "seq", 30)...)
	eventually(t, tm.delivery, func() bool { return c.distinct() == len(ids) }, "%d of %d delivered", c.distinct, len(ids))
	c.mu.Lock()
	order := slices.Clone(c.order)
	c.mu.Unlock()
	if !slices.Equal(order, ids) {
		t.Fatalf("with concurrency 1, deliveries came in the order %v, want %v", order, ids)
	}
}

func testStreamSlowHandlerIsolated(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 1)[0]
	g := newGate(t)
	c := newTally()
	var slowID atomic.Value
	consume(t, s, "mixed", "g", func(ctx context.Context, e coord.StreamEntry) error {
		if string(e.Payload) == `"slow"` {
			slowID.Store(e.ID)
			g.wait()
			return nil
		}
		c.add(e)
		return nil
	}, coord.ConsumeConcurrency(2), coord.ClaimAfter(tm.held))
	_, err := s.Append(ctxOf(t), "mixed", "slow")
	must(t, err, "Append")
	ids := appendN(t, s, "mixed", 10)
	eventually(t, tm.delivery, func() bool { return c.distinct() == len(ids) }, "%d of %d entries passed the slow handler", c.distinct, len(ids))
	// A handler counts its entry before it returns, and the entry is
	// acknowledged after: the last of the ten may still be pending for a
	// moment. Pending settles at 1 (the slow entry) and stays there while
	// the slow handler runs: 0 would mean the slow entry was acknowledged
	// before its handler returned.
	var pending int64
	eventually(t, tm.delivery, func() bool {
		gi, _ := groupInfo(info(t, s, "mixed"), "g")
		pending = gi.Pending
		return pending == 1
	}, "pending = %d while the slow handler runs, want 1", func() any { return pending })
	g.open()
	eventually(t, tm.delivery, func() bool {
		gi, _ := groupInfo(info(t, s, "mixed"), "g")
		return gi.Pending == 0
	}, "the slow entry was not acknowledged")
}

func testStreamTrimByMaxLen(t *testing.T, h Harness) {
	s := streamsOf(t, h, 1)[0]
	ids := appendN(t, s, "len", 10)
	n, err := s.Trim(ctxOf(t), "len", coord.Retention{MaxLen: 3})
	must(t, err, "Trim")
	if n != 7 {
		t.Fatalf("Trim(MaxLen 3) of 10 entries dropped %d, want 7", n)
	}
	got, err := s.Range(ctxOf(t), "len", "", 100)
	must(t, err, "Range")
	if !slices.Equal(entryIDs(got), ids[7:]) {
		t.Fatalf("after Trim the stream holds %v, want %v", entryIDs(got), ids[7:])
	}
	if in := info(t, s, "len"); in.Length != 3 || in.FirstID != ids[7] {
		t.Fatalf("Info = %+v, want Length 3 from %s", in, ids[7])
	}
	if n, err := s.Trim(ctxOf(t), "len", coord.Retention{}); err != nil || n != 0 {
		t.Fatalf("Trim with no retention = %d, %v; want 0, nil", n, err)
	}
}

func testStreamTrimByMaxAge(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 1)[0]
	age := tm.lease
	// A try whose appends and trim took longer than the age itself (a
	// stalled machine) proves nothing either way: it is tried again, on
	// a stream of its own.
	for try := range 3 {
		stream := fmt.Sprintf("age-%d", try)
		appendN(t, s, stream, 3)
		hold(ctxOf(t), 2*age)
		start := time.Now()
		fresh := appendN(t, s, stream, 2)
		n, err := s.Trim(ctxOf(t), stream, coord.Retention{MaxAge: age})
		must(t, err, "Trim")
		if time.Since(start) >= age-tm.stamp {
			continue
		}
		got, err2 := s.Range(ctxOf(t), stream, "", 100)
		must(t, err2, "Range")
		if n != 3 || !slices.Equal(entryIDs(got), fresh) {
			t.Fatalf("Trim(MaxAge %v) dropped %d and kept %v; want 3 dropped, %v kept", age, n, entryIDs(got), fresh)
		}
		return
	}
	t.Fatalf("three tries each took longer than %v from the appends to the trim", age)
}

func testStreamTrimmedWhilePending(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 1)[0]
	claim := tm.short
	ctx, cancel := context.WithCancel(ctxOf(t))
	defer cancel()
	c := newTally()
	sub, err := s.Consume(ctx, "tw", "g", func(_ context.Context, e coord.StreamEntry) error {
		c.add(e)
		return errStreamTest
	}, coord.ClaimAfter(tm.held), coord.ConsumerName("a"))
	must(t, err, "Consume")
	ids := appendN(t, s, "tw", 3)
	eventually(t, tm.delivery, func() bool { return c.distinct() == 3 }, "%d of 3 delivered", c.distinct)
	cancel()
	if !closedWithin(sub.Done(), tm.ended) {
		t.Fatal("the subscription did not end")
	}
	n, err := s.Trim(ctxOf(t), "tw", coord.Retention{MaxLen: 1})
	must(t, err, "Trim")
	if n != 2 {
		t.Fatalf("Trim dropped %d, want 2", n)
	}
	c2 := newTally()
	consume(t, s, "tw", "g", c2.acking(), coord.ClaimAfter(claim), coord.ConsumerName("b"))
	eventually(t, tm.delivery+2*claim, func() bool { return c2.count(ids[2]) == 1 }, "the pending entry kept was not claimed")
	eventually(t, tm.delivery, func() bool { return info(t, s, "tw").TrimmedWhilePending == 2 },
		"TrimmedWhilePending = %d, want 2", func() any { return info(t, s, "tw").TrimmedWhilePending })
	if c2.count(ids[0])+c2.count(ids[1]) != 0 {
		t.Fatal("a trimmed entry was delivered")
	}
}

func testStreamSafeTrim(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 1)[0]
	g := newGate(t)
	ctx, cancel := context.WithCancel(ctxOf(t))
	defer cancel()
	got := newSignal()
	sub, err := s.Consume(ctx, "safe", "slow", func(context.Context, coord.StreamEntry) error {
		got.fire()
		g.wait()
		return errStreamTest
	}, coord.ClaimAfter(tm.held))
	must(t, err, "Consume")
	ids := appendN(t, s, "safe", 6)
	if !closedWithin(got.ch, tm.delivery) {
		t.Fatal("the first entry was not delivered")
	}
	n, err := s.Trim(ctxOf(t), "safe", coord.Retention{MaxLen: 2, Safe: true})
	must(t, err, "Trim")
	if n != 0 {
		t.Fatalf("a safe trim dropped %d entries a live group had not acknowledged", n)
	}
	g.open()
	cancel()
	if !closedWithin(sub.Done(), tm.ended) {
		t.Fatal("the subscription did not end")
	}
	// The group is gone quiet: past GroupTTL it stops pinning the trim.
	ttl := tm.short
	hold(ctxOf(t), 2*ttl)
	n, err = s.Trim(ctxOf(t), "safe", coord.Retention{MaxLen: 2, Safe: true, GroupTTL: ttl})
	must(t, err, "Trim")
	left, err2 := s.Range(ctxOf(t), "safe", "", 100)
	must(t, err2, "Range")
	if n != 4 || !slices.Equal(entryIDs(left), ids[4:]) {
		t.Fatalf("a safe trim past the group's GroupTTL dropped %d and kept %v; want 4 dropped, %v kept", n, entryIDs(left), ids[4:])
	}
}

func testStreamInfoLagAndPending(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 1)[0]
	if in := info(t, s, "lag"); in.Length != 0 || len(in.Groups) != 0 {
		t.Fatalf("Info of a stream never appended to = %+v, want zero", in)
	}
	g := newGate(t)
	appendN(t, s, "lag", 5)
	consume(t, s, "lag", "g", func(context.Context, coord.StreamEntry) error { g.wait(); return nil }, coord.ClaimAfter(tm.held))
	var gi coord.StreamGroupInfo
	eventually(t, tm.delivery, func() bool {
		gi, _ = groupInfo(info(t, s, "lag"), "g")
		return gi.Pending == 1 && gi.Lag == 4
	}, "group = %+v, want Pending 1, Lag 4", func() any { return gi })
	if gi.Consumers != 1 || gi.LastDeliveredID == "" {
		t.Fatalf("group = %+v, want 1 consumer and a last delivered ID", gi)
	}
	g.open()
	eventually(t, tm.delivery, func() bool {
		gi, _ = groupInfo(info(t, s, "lag"), "g")
		return gi.Pending == 0 && gi.Lag == 0 && gi.OldestPending == 0
	}, "group = %+v, want nothing pending or lagging", func() any { return gi })
}

func testStreamCloseWaits(t *testing.T, h Harness) {
	tm := timingOf(h)
	requirePrimitive(t, h, Streams)
	b := instances(t, h, 1)[0]
	s := b.Streams()
	g := newGate(t)
	running := newSignal()
	var ctxEnded atomic.Bool
	sub := consume(t, s, "close", "g", func(ctx context.Context, e coord.StreamEntry) error {
		running.fire()
		g.wait()
		ctxEnded.Store(ctx.Err() != nil)
		return nil
	})
	appendN(t, s, "close", 1)
	if !closedWithin(running.ch, tm.delivery) {
		t.Fatal("the entry was not delivered")
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a handler was running", err)
	case <-time.After(tm.settle):
	}
	g.open()
	select {
	case err := <-closed:
		must(t, err, "Close")
	case <-time.After(tm.closing):
		t.Fatal("Close did not return after the handler did")
	}
	if !isClosed(sub.Done()) {
		t.Fatal("Done is not closed after Close")
	}
	if !ctxEnded.Load() {
		t.Fatal("the handler's ctx had not ended when Close was waiting for it")
	}
	if _, err := s.Append(ctxOf(t), "close", 1); !errors.Is(err, coord.ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
}

func testStreamCtxEnds(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 1)[0]
	ctx, cancel := context.WithCancel(ctxOf(t))
	sub, err := s.Consume(ctx, "quiet", "g", func(context.Context, coord.StreamEntry) error { return nil })
	must(t, err, "Consume")
	hold(ctxOf(t), tm.settle) // the read loop is blocked in its read
	cancel()
	if !closedWithin(sub.Done(), tm.cancel) {
		t.Fatalf("the subscription did not end within %v of its ctx", tm.cancel)
	}
	sub2 := consume(t, s, "quiet", "g", func(context.Context, coord.StreamEntry) error { return nil })
	hold(ctxOf(t), tm.settle)
	start := time.Now()
	sub2.Unsubscribe()
	if !closedWithin(sub2.Done(), tm.cancel) {
		t.Fatalf("the subscription did not end within %v of Unsubscribe (%v)", tm.cancel, time.Since(start))
	}
}

func testStreamReconnect(t *testing.T, h Harness) {
	tm := timingOf(h)
	s := streamsOf(t, h, 2)
	c := newTally()
	consume(t, s[1], "resume", "g", c.acking(), coord.ClaimAfter(tm.short))
	appendN(t, s[0], "resume", 1)
	eventually(t, tm.delivery, func() bool { return c.distinct() == 1 }, "not delivered before the restart")
	h.(Restarter).Restart(t)
	var id string
	retrying(t, tm.restart, func() bool {
		if id == "" {
			var err error
			if id, err = s[0].Append(ctxOf(t), "resume", "after"); err != nil {
				id = ""
				return false
			}
		}
		return c.count(id) == 1
	}, "entries appended after the restart are not delivered")
}

func testStreamBadInput(t *testing.T, h Harness) {
	s := streamsOf(t, h, 1)[0]
	ctx := ctxOf(t)
	nop := func(context.Context, coord.StreamEntry) error { return nil }
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s = %v, want an error wrapping ErrInvalid", what, err)
		}
	}
	for label, name := range badNames() {
		_, err := s.Append(ctx, name, 1)
		check("Append to a stream named "+label, err)
		_, err = s.Consume(ctx, name, "g", nop)
		check("Consume of a stream named "+label, err)
		_, err = s.Consume(ctx, "s", name, nop)
		check("Consume by a group named "+label, err)
		_, err = s.Range(ctx, name, "", 1)
		check("Range of a stream named "+label, err)
		_, err = s.Info(ctx, name)
		check("Info of a stream named "+label, err)
		_, err = s.Trim(ctx, name, coord.Retention{MaxLen: 1})
		check("Trim of a stream named "+label, err)
		_, err = s.DeadLetters(ctx, name, 1)
		check("DeadLetters of a stream named "+label, err)
	}
	opts := map[string]coord.ConsumeOption{
		"ConsumeConcurrency(0)":    coord.ConsumeConcurrency(0),
		"ConsumeConcurrency(10^6)": coord.ConsumeConcurrency(1_000_000),
		"ClaimAfter(0)":            coord.ClaimAfter(0),
		"ClaimAfter(-1s)":          coord.ClaimAfter(-time.Second),
		"MaxDeliveries(0)":         coord.MaxDeliveries(0),
		"StartAt(7)":               coord.StartAt(7),
		`ConsumerName("a\nb")`:     coord.ConsumerName("a\nb"),
		"nil option":               nil,
	}
	for label, o := range opts {
		_, err := s.Consume(ctx, "s", "g", nop, o)
		check("Consume with "+label, err)
	}
	_, err := s.Consume(ctx, "s", "g", nil)
	check("Consume with a nil handler", err)
	for _, n := range []int{0, -1, coord.MaxStreamCount + 1} {
		_, err = s.Range(ctx, "s", "", n)
		check(fmt.Sprintf("Range of %d entries", n), err)
		_, err = s.DeadLetters(ctx, "s", n)
		check(fmt.Sprintf("DeadLetters of %d entries", n), err)
	}
	for _, id := range []string{"abc", "1-x", "-1", "1-2-3", "+"} {
		_, err = s.Range(ctx, "s", id, 1)
		check(fmt.Sprintf("Range from %q", id), err)
	}
	_, err = s.Trim(ctx, "s", coord.Retention{MaxLen: -1})
	check("Trim to a negative length", err)
	_, err = s.Trim(ctx, "s", coord.Retention{MaxAge: -time.Second})
	check("Trim to a negative age", err)
	_, err = s.Append(ctx, "s", make(chan int))
	check("Append of a payload JSON cannot encode", err)
	if in := info(t, s, "s"); in.Length != 0 {
		t.Fatalf("refused calls stored %d entries", in.Length)
	}
}
