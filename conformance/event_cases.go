package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

func eventCases() []testCase {
	return []testCase{
		{name: "FanOutNotToSender", run: testEvFanOut},
		{name: "IncludeOwn", run: testEvIncludeOwn},
		{name: "OrderPerPublisher", run: testEvOrder},
		{name: "TopicIsolation", run: testEvTopicIsolation},
		{name: "PayloadRoundTrip", run: testEvPayload},
		{name: "ConcurrentPublishers", run: testEvConcurrent},
		{name: "UnsubscribeStops", run: testEvUnsubscribe},
		{name: "PanicIsolated", run: testEvPanic},
		{name: "BlockedHandlerIsolated", run: testEvBlocked},
		{name: "OverflowCounted", run: testEvOverflow},
		{name: "Stats", run: testEvStats},
		{name: "BadInput", run: testEvBadInput},
		{name: "CutSubscriptionResumes", needs: capCut, run: testEvCut},
		{name: "ForeignMalformedDropped", needs: capForeign, run: testEvForeignMalformed},
		{name: "ForeignWireFormat", needs: capForeign, run: testEvForeignWellFormed},
	}
}

func subEv(t *testing.T, b coord.Backend, topic string, opts ...coord.SubscribeOption) (*recorder[coord.Event], coord.Subscription) {
	t.Helper()
	r := &recorder[coord.Event]{}
	sub, err := b.Events().Subscribe(ctxOf(t), topic, r.add, opts...)
	must(t, err, "Events.Subscribe")
	return r, sub
}

// payloadsOf returns the payloads as strings, JSON strings unquoted.
func payloadsOf(evs []coord.Event) []string {
	var out []string
	for _, e := range evs {
		var s string
		if err := jsonUnmarshal(e.Payload, &s); err == nil {
			out = append(out, s)
		} else {
			out = append(out, string(e.Payload))
		}
	}
	return out
}

func hasPayload(p string) func(coord.Event) bool {
	return func(e coord.Event) bool { return string(e.Payload) == strconv.Quote(p) }
}

// evFence publishes marker on topic from `from` and waits until every
// recorder got it.
func evFence(t *testing.T, tm timing, from coord.Backend, topic, marker string, recs ...*recorder[coord.Event]) {
	t.Helper()
	must(t, from.Events().Publish(ctxOf(t), topic, marker), "Publish")
	eventually(t, tm.delivery, func() bool {
		for _, r := range recs {
			if !r.any(hasPayload(marker)) {
				return false
			}
		}
		return true
	}, "marker %q delivered", marker)
}

func testEvFanOut(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	recs := make([]*recorder[coord.Event], 3)
	for i, in := range ins {
		recs[i], _ = subEv(t, in, "orders")
	}
	must(t, ins[0].Events().Publish(ctx, "orders", map[string]any{"id": 1}), "Publish")
	eventually(t, tm.delivery, func() bool { return recs[1].len() >= 1 && recs[2].len() >= 1 }, "B and C receive")
	for i := 1; i < 3; i++ {
		e := recs[i].all()[0]
		if e.Topic != "orders" || string(e.Payload) != `{"id":1}` || e.InstanceID != ins[0].InstanceID() {
			t.Errorf("instance %d received %+v", i, e)
		}
		if !near(e.Timestamp, time.Now(), tm.clock) {
			t.Errorf("Timestamp %v is not about now", e.Timestamp)
		}
	}
	evFence(t, tm, ins[1], "orders", "marker", recs[0], recs[2])
	if got := payloadsOf(recs[0].all()); !slices.Equal(got, []string{"marker"}) {
		t.Errorf("the sender received %v, want only the marker from another instance", got)
	}
	if got := recs[1].len(); got != 1 {
		t.Errorf("instance 1 received %d events, want 1 (not its own marker)", got)
	}
}

func testEvIncludeOwn(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	own, _ := subEv(t, ins[0], "t", coord.IncludeOwn())
	plain, _ := subEv(t, ins[0], "t")
	must(t, ins[0].Events().Publish(ctx, "t", "mine"), "Publish")
	eventually(t, tm.delivery, func() bool { return own.len() >= 1 }, "own event with IncludeOwn")
	evFence(t, tm, ins[1], "t", "theirs", own, plain)
	if got := payloadsOf(own.all()); !slices.Equal(got, []string{"mine", "theirs"}) {
		t.Errorf("IncludeOwn subscriber received %v", got)
	}
	if got := payloadsOf(plain.all()); !slices.Equal(got, []string{"theirs"}) {
		t.Errorf("subscriber without IncludeOwn received %v", got)
	}
}

func testEvOrder(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	rec, _ := subEv(t, ins[2], "seq")
	const n = 300
	var wg sync.WaitGroup
	for p := 0; p < 2; p++ {
		wg.Go(func() {
			for i := 0; i < n; i++ {
				if err := ins[p].Events().Publish(ctx, "seq", fmt.Sprintf("p%d/%d", p, i)); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	eventually(t, tm.delivery, func() bool { return rec.len() >= 2*n }, "%d events (got %d)", 2*n, rec.len())
	checkOrder(t, payloadsOf(rec.all()), []string{"p0", "p1"}, n)
}

func testEvTopicIsolation(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	topics := []string{"a", "ab", "a*", "A", "a.b", "ключ", "{a}"}
	recs := map[string]*recorder[coord.Event]{}
	for _, tp := range topics {
		recs[tp], _ = subEv(t, ins[1], tp)
	}
	var wg sync.WaitGroup
	for _, tp := range topics {
		wg.Go(func() {
			for i := 0; i < 10; i++ {
				if err := ins[0].Events().Publish(ctx, tp, tp+"/"+strconv.Itoa(i)); err != nil {
					t.Errorf("Publish: %v", err)
				}
			}
		})
	}
	wg.Wait()
	for _, tp := range topics {
		evFence(t, tm, ins[0], tp, "end:"+tp, recs[tp])
	}
	for _, tp := range topics {
		got := payloadsOf(recs[tp].all())
		checkOrder(t, got[:len(got)-1], []string{tp}, 10)
		for _, e := range recs[tp].all() {
			if e.Topic != tp {
				t.Errorf("subscriber of %q received an event on %q", tp, e.Topic)
			}
		}
	}
}

func testEvPayload(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	rec, _ := subEv(t, ins[1], "p")
	samples := payloadSamples()
	for _, p := range samples {
		must(t, ins[0].Events().Publish(ctx, "p", p), "Publish")
	}
	must(t, ins[0].Events().Publish(ctx, "p", nil), "Publish nil")
	big := make([]byte, driver.DefaultMaxPayload-2)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	must(t, ins[0].Events().Publish(ctx, "p", string(big)), "Publish of a payload at the limit")
	eventually(t, tm.delivery, func() bool { return rec.len() >= len(samples)+2 }, "all events")
	got := rec.all()
	for i, p := range samples {
		want, err := driver.EncodePayload(p, 0)
		must(t, err, "EncodePayload")
		if string(got[i].Payload) != string(want) {
			t.Errorf("payload %d = %.200s, want %.200s", i, got[i].Payload, want)
		}
	}
	if string(got[len(samples)].Payload) != "null" {
		t.Errorf("nil payload arrived as %s, want null", got[len(samples)].Payload)
	}
	if p := got[len(samples)+1].Payload; len(p) != driver.DefaultMaxPayload || string(p[1:len(p)-1]) != string(big) {
		t.Errorf("a payload of exactly the limit arrived with %d bytes", len(p))
	}
}

func testEvConcurrent(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 4)
	ctx := ctxOf(t)
	rec, _ := subEv(t, ins[3], "c")
	rec2, _ := subEv(t, ins[0], "c")
	const perG, gs = 30, 9
	var wg sync.WaitGroup
	for g := 0; g < gs; g++ {
		wg.Go(func() {
			for i := 0; i < perG; i++ {
				if err := ins[g%3].Events().Publish(ctx, "c", fmt.Sprintf("g%d/%d", g, i)); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	eventually(t, tm.delivery, func() bool { return rec.len() >= gs*perG }, "all %d events (got %d)", gs*perG, rec.len())
	var pubs, others []string
	for g := 0; g < gs; g++ {
		pubs = append(pubs, fmt.Sprintf("g%d", g))
		if g%3 != 0 {
			others = append(others, fmt.Sprintf("g%d", g))
		}
	}
	checkOrder(t, payloadsOf(rec.all()), pubs, perG)
	// Instance 0 gets the events of instances 1 and 2 only.
	eventually(t, tm.delivery, func() bool { return rec2.len() >= len(others)*perG }, "events of the other instances")
	checkOrder(t, payloadsOf(rec2.all()), others, perG)
}

func testEvUnsubscribe(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	gone, sub := subEv(t, ins[1], "u")
	stay, _ := subEv(t, ins[1], "u")
	otherTopic, _ := subEv(t, ins[1], "v")
	evFence(t, tm, ins[0], "u", "before", gone, stay)
	sub.Unsubscribe()
	if !closedWithin(sub.Done(), tm.prompt) {
		t.Errorf("Done not closed after Unsubscribe")
	}
	sub.Unsubscribe()
	must(t, ins[0].Events().Publish(ctx, "u", "after"), "Publish")
	evFence(t, tm, ins[0], "u", "fence", stay)
	evFence(t, tm, ins[0], "v", "v", otherTopic)
	if got := payloadsOf(gone.all()); !slices.Equal(got, []string{"before"}) {
		t.Errorf("an unsubscribed handler received %v", got)
	}
	if got := payloadsOf(stay.all()); !slices.Equal(got, []string{"before", "after", "fence"}) {
		t.Errorf("the other subscription received %v", got)
	}
	// ctx ending ends a subscription too.
	sctx, cancel := context.WithCancel(ctx)
	r := &recorder[coord.Event]{}
	sub2, err := ins[1].Events().Subscribe(sctx, "u", r.add)
	must(t, err, "Subscribe")
	cancel()
	if !closedWithin(sub2.Done(), tm.ended) {
		t.Errorf("Done not closed within %v of the subscription's ctx ending", tm.ended)
	}
	evFence(t, tm, ins[0], "u", "fence2", stay)
	if r.len() != 0 {
		t.Errorf("a subscription whose ctx ended received %v", payloadsOf(r.all()))
	}
}

func testEvPanic(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	survivor := &recorder[coord.Event]{}
	_, err := ins[1].Events().Subscribe(ctx, "x", func(e coord.Event) {
		if string(e.Payload) == `"boom"` {
			panic("handler panic (expected by the test)")
		}
		survivor.add(e)
	})
	must(t, err, "Subscribe")
	other, _ := subEv(t, ins[1], "x")
	remote, _ := subEv(t, ins[2], "x")
	must(t, ins[0].Events().Publish(ctx, "x", "boom"), "Publish")
	must(t, ins[0].Events().Publish(ctx, "x", "after"), "Publish")
	eventually(t, tm.delivery, func() bool { return survivor.any(hasPayload("after")) }, "the panicking subscription keeps receiving")
	eventually(t, tm.delivery, func() bool { return other.len() == 2 && remote.len() == 2 }, "other subscribers receive both")
	eventually(t, tm.prompt, func() bool { return ins[1].Events().Stats().Panics == 1 }, "Stats().Panics = 1 (got %d)", ins[1].Events().Stats().Panics)
}

func testEvBlocked(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	g := newGate(t)
	blocked := newSignal()
	_, err := ins[1].Events().Subscribe(ctx, "b", func(coord.Event) { blocked.fire(); g.wait() })
	must(t, err, "Subscribe")
	same, _ := subEv(t, ins[1], "b")
	sameOther, _ := subEv(t, ins[1], "b2")
	remote, _ := subEv(t, ins[2], "b")
	const n = 50
	for i := 0; i < n; i++ {
		must(t, ins[0].Events().Publish(ctx, "b", i), "Publish")
		must(t, ins[0].Events().Publish(ctx, "b2", i), "Publish")
	}
	if !closedWithin(blocked.ch, tm.delivery) {
		t.Fatal("the blocking handler was never called")
	}
	eventually(t, tm.delivery, func() bool { return same.len() == n && remote.len() == n && sameOther.len() == n },
		"subscribers next to a blocked one receive all %d (%d, %d, %d)", n, func() any { return same.len() }, func() any { return sameOther.len() }, func() any { return remote.len() })
	g.open()
}

func testEvOverflow(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	g := newGate(t)
	blocked := newSignal()
	rec := &recorder[coord.Event]{}
	_, err := ins[1].Events().Subscribe(ctx, "o", func(e coord.Event) { blocked.fire(); g.wait(); rec.add(e) }, coord.WithQueueSize(1))
	must(t, err, "Subscribe")
	const n = 40
	for i := 0; i < n; i++ {
		must(t, ins[0].Events().Publish(ctx, "o", fmt.Sprintf("p/%d", i)), "Publish")
	}
	if !closedWithin(blocked.ch, tm.delivery) {
		t.Fatal("handler never called")
	}
	eventually(t, tm.delivery, func() bool { return ins[1].Events().Stats().Dropped > 0 },
		"a queue of 1 behind a blocked handler overflows and counts drops (Stats %+v)", func() any { return ins[1].Events().Stats() })
	g.open()
	// The queue may still be full of what was queued before the gate
	// opened, so "end" is sent until one gets through.
	retrying(t, tm.delivery, func() bool {
		must(t, ins[0].Events().Publish(ctx, "o", "end"), "Publish")
		return rec.any(hasPayload("end"))
	}, "delivery resumes after the overflow")
	delivered := 0
	last := -1
	for _, p := range payloadsOf(rec.all()) {
		var i int
		if _, err := fmt.Sscanf(p, "p/%d", &i); err == nil {
			if i <= last {
				t.Errorf("event %d delivered after %d", i, last)
			}
			last = i
			delivered++
		}
	}
	if st := ins[1].Events().Stats(); int(st.Dropped) < n-delivered {
		t.Errorf("Stats().Dropped = %d, but %d of %d events were not delivered", st.Dropped, n-delivered, n)
	}
}

func testEvStats(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	rec, _ := subEv(t, ins[1], "s")
	_, _ = subEv(t, ins[1], "s")
	for i := 0; i < 4; i++ {
		must(t, ins[0].Events().Publish(ctx, "s", i), "Publish")
	}
	must(t, ins[0].Events().Publish(ctx, "nobody-listens", 1), "Publish")
	eventually(t, tm.delivery, func() bool { return rec.len() == 4 }, "deliveries")
	if st := ins[0].Events().Stats(); st.Published != 5 {
		t.Errorf("sender's Stats().Published = %d, want 5", st.Published)
	}
	eventually(t, tm.prompt, func() bool { return ins[1].Events().Stats().Received == 4 },
		"receiver's Stats().Received = 4 (got %+v)", func() any { return ins[1].Events().Stats() })
	st := ins[1].Events().Stats()
	if st.Dropped != 0 || st.Malformed != 0 || st.Panics != 0 || st.Published != 0 {
		t.Errorf("receiver's Stats = %+v, want only Received", st)
	}
}

func testEvBadInput(t *testing.T, h Harness) {
	tm := timingOf(h)
	ins := instances(t, h, 2)
	ctx := ctxOf(t)
	rec, _ := subEv(t, ins[1], "t")
	ev := ins[0].Events()
	invalid := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
	for label, n := range badNames() {
		invalid("Publish on topic "+label, ev.Publish(ctx, n, 1))
		_, err := ev.Subscribe(ctx, n, func(coord.Event) {})
		invalid("Subscribe to topic "+label, err)
	}
	for label, p := range badPayloads() {
		invalid("Publish of "+label, ev.Publish(ctx, "t", p))
	}
	for _, q := range []int{0, -1} {
		_, err := ev.Subscribe(ctx, "t", func(coord.Event) {}, coord.WithQueueSize(q))
		invalid(fmt.Sprintf("Subscribe with queue size %d", q), err)
	}
	evFence(t, tm, ins[0], "t", "fence", rec)
	if got := payloadsOf(rec.all()); !slices.Equal(got, []string{"fence"}) {
		t.Errorf("refused events were delivered: %v", got)
	}
	if st := ev.Stats(); st.Published != 1 {
		t.Errorf("Stats().Published = %d after refused events and one good one, want 1", st.Published)
	}
}

func testEvCut(t *testing.T, h Harness) {
	tm := timingOf(h)
	cutter, ok := h.(SubscriptionCutter)
	if !ok {
		t.Fatalf("harness %T declares CutSubscription but does not implement SubscriptionCutter", h)
	}
	ins := instances(t, h, 3)
	ctx := ctxOf(t)
	rec, sub := subEv(t, ins[1], "cut")
	control, _ := subEv(t, ins[2], "cut")
	evFence(t, tm, ins[0], "cut", "before", rec, control)
	cutter.CutSubscription(t, ins[1])
	retrying(t, tm.reconnect, func() bool {
		must(t, ins[0].Events().Publish(ctx, "cut", "after"), "Publish")
		return rec.any(hasPayload("after"))
	}, "event delivery resumes after a cut")
	if isClosed(sub.Done()) {
		t.Errorf("a cut ended the subscription; it must survive the reconnect")
	}
	// Order from one publisher still holds across the gap.
	got := payloadsOf(rec.all())
	if got[0] != "before" {
		t.Errorf("first event %q", got[0])
	}
}

func testEvForeignMalformed(t *testing.T, h Harness) {
	tm := timingOf(h)
	fp := foreign(t, h)
	ins := instances(t, h, 2)
	rec, _ := subEv(t, ins[1], "t")
	evFence(t, tm, ins[0], "t", "before", rec)
	bad := []string{
		`not json`,
		`{"instanceId":"x","event":"t","payload":`,
		`[]`,
		`{"instanceId":"x","payload":1,"timestamp":1700000000000}`,
		`{"instanceId":"x","event":"","payload":1,"timestamp":1700000000000}`,
		`{"instanceId":"x","event":5,"payload":1,"timestamp":1700000000000}`,
	}
	for _, m := range bad {
		fp.PublishRaw(t, "event", []byte(m))
	}
	eventually(t, tm.delivery, func() bool { return ins[1].Events().Stats().Malformed >= uint64(len(bad)) },
		"%d malformed events counted (Stats %+v)", func() any { return len(bad) }, func() any { return ins[1].Events().Stats() })
	evFence(t, tm, ins[0], "t", "after", rec)
	if got := payloadsOf(rec.all()); !slices.Equal(got, []string{"before", "after"}) {
		t.Errorf("subscriber received %v around malformed messages", got)
	}
}

func testEvForeignWellFormed(t *testing.T, h Harness) {
	tm := timingOf(h)
	fp := foreign(t, h)
	ins := instances(t, h, 1)
	rec, _ := subEv(t, ins[0], "shard.rebalance")
	fp.PublishRaw(t, "event", []byte(`{"instanceId":"node-legacy","event":"shard.rebalance","payload":{"shard":3,"id":1234567890123456789},"timestamp":1700000000789}`))
	fp.PublishRaw(t, "event", []byte(`{"instanceId":"node-legacy","event":"other","payload":1,"timestamp":1700000000789}`))
	eventually(t, tm.delivery, func() bool { return rec.len() >= 1 }, "an event in the Node fleet's wire format is delivered")
	e := rec.all()[0]
	if e.Topic != "shard.rebalance" || e.InstanceID != "node-legacy" || string(e.Payload) != `{"shard":3,"id":1234567890123456789}` ||
		!e.Timestamp.Equal(time.UnixMilli(1700000000789)) {
		t.Errorf("event from the wire = %+v", e)
	}
	fp.PublishRaw(t, "event", []byte(`{"instanceId":"node-legacy","event":"shard.rebalance","payload":"last","timestamp":1700000000789}`))
	eventually(t, tm.delivery, func() bool { return rec.any(hasPayload("last")) }, "last event")
	if n := rec.len(); n != 2 {
		t.Errorf("subscriber of one topic received %d events, want 2", n)
	}
}
