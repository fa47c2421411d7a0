package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// rec records what a handler receives.
type rec[T any] struct {
	mu  sync.Mutex
	got []T
}

func (r *rec[T]) add(v T) {
	r.mu.Lock()
	r.got = append(r.got, v)
	r.mu.Unlock()
}

func (r *rec[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func describe(invs []coord.Invalidation) []string {
	out := make([]string, len(invs))
	for i, inv := range invs {
		if inv.Kind == coord.PurgeAll {
			out[i] = "purge:" + inv.Reason
		} else {
			out[i] = inv.Key
		}
	}
	return out
}

// An overflow owes a PurgeAll, queued behind what was queued before the
// loss, so the subscriber purges after everything it missed.
func TestOverflowPurgeComesAfterQueued(t *testing.T) {
	ns := nodes(t, 2)
	ctx := t.Context()
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	var r rec[coord.Invalidation]
	_, err := ns[1].Invalidator().Subscribe(ctx, func(inv coord.Invalidation) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
		r.add(inv)
	}, coord.WithQueueSize(2))
	if err != nil {
		t.Fatal(err)
	}
	iv := ns[0].Invalidator()
	_ = iv.Invalidate(ctx, "k0", nil)
	<-entered // k0 is in the handler; the queue is empty
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		_ = iv.Invalidate(ctx, k, nil)
	}
	close(gate)
	eventually(t, 2*time.Second, func() bool { return len(r.all()) == 4 }, "four deliveries")
	if got := fmt.Sprint(describe(r.all())); got != "[k0 k1 k2 purge:overflow]" {
		t.Errorf("delivered %s, want [k0 k1 k2 purge:overflow]", got)
	}
	st := ns[1].Invalidator().Stats()
	if st.Dropped != 2 || st.Purges != 1 || st.Received != 3 {
		t.Errorf("Stats = %+v, want 2 dropped, 1 purge, 3 received", st)
	}
}

func TestCutSubscriptionPurgesAfterGap(t *testing.T) {
	hub := NewHub(nil)
	pub := hub.NewNode(nil)
	cut := hub.NewNode(&NodeOptions{ReconnectDelay: 50 * time.Millisecond})
	t.Cleanup(func() { _ = pub.Close(context.Background()); _ = cut.Close(context.Background()) })
	ctx := t.Context()
	var invs rec[coord.Invalidation]
	var evs rec[coord.Event]
	if _, err := cut.Invalidator().Subscribe(ctx, invs.add); err != nil {
		t.Fatal(err)
	}
	if _, err := cut.Events().Subscribe(ctx, "t", evs.add); err != nil {
		t.Fatal(err)
	}
	cut.CutSubscription()
	if h := cut.Health(ctx); h.Subscriber != coord.Reconnecting || h.Status != coord.Healthy {
		t.Errorf("Health while cut = %+v", h)
	}
	_ = pub.Invalidator().Invalidate(ctx, "lost", nil)
	_ = pub.Events().Publish(ctx, "t", "lost")
	eventually(t, 2*time.Second, func() bool { return len(invs.all()) == 1 }, "purge after reconnect")
	if got := fmt.Sprint(describe(invs.all())); got != "[purge:reconnect]" {
		t.Errorf("after the cut: %s", got)
	}
	_ = pub.Invalidator().Invalidate(ctx, "after", nil)
	_ = pub.Events().Publish(ctx, "t", "after")
	eventually(t, 2*time.Second, func() bool { return len(invs.all()) == 2 && len(evs.all()) == 1 }, "delivery resumes")
	if e := evs.all()[0]; string(e.Payload) != `"after"` {
		t.Errorf("event after the cut: %s", e.Payload)
	}
	if h := cut.Health(ctx); h.Subscriber != coord.Connected {
		t.Errorf("Health after reconnect = %+v", h)
	}
}

func TestPublishRaw(t *testing.T) {
	hub := NewHub(nil)
	n := hub.NewNode(&NodeOptions{InstanceID: "me"})
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	ctx := t.Context()
	var invs rec[coord.Invalidation]
	var evs rec[coord.Event]
	if _, err := n.Invalidator().Subscribe(ctx, invs.add); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Events().Subscribe(ctx, "e", evs.add); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ ch, msg string }{
		{ChannelInvalidate, `nope`},
		{ChannelInvalidate, `{"instanceId":"x"}`},
		{ChannelInvalidate, `{"instanceId":1,"cacheKey":"k"}`},
		{ChannelInvalidate, `{"cacheKey":"k","timestamp":"soon"}`},
		{ChannelPattern, `{"cacheKey":"a[b"}`},
		{ChannelEvent, `{"event":""}`},
		{ChannelInvalidate, `{"instanceId":"me","cacheKey":"own"}`},
		{ChannelInvalidate, `{"instanceId":"node","cacheKey":"k","metadata":{ "a" : 1 },"timestamp":1700000000123}`},
		{ChannelPattern, `{"instanceId":"node","cacheKey":"user:*"}`},
		{ChannelEvent, `{"instanceId":"node","event":"e","payload":[1, 2],"timestamp":1700000000123}`},
	} {
		if err := hub.PublishRaw(m.ch, []byte(m.msg)); err != nil {
			t.Fatal(err)
		}
	}
	if err := hub.PublishRaw("other", nil); err == nil {
		t.Error("PublishRaw on an unknown channel succeeded")
	}
	notPurge := func() []coord.Invalidation {
		return slices.DeleteFunc(invs.all(), func(i coord.Invalidation) bool { return i.Kind == coord.PurgeAll })
	}
	eventually(t, 2*time.Second, func() bool { return len(notPurge()) == 2 && len(evs.all()) == 1 }, "well-formed messages delivered")
	if st := n.Invalidator().Stats(); st.Malformed != 5 {
		t.Errorf("invalidation Malformed = %d, want 5", st.Malformed)
	}
	if st := n.Events().Stats(); st.Malformed != 1 {
		t.Errorf("event Malformed = %d, want 1", st.Malformed)
	}
	got := notPurge()
	if got[0].Key != "k" || string(got[0].Metadata) != `{"a":1}` || got[0].InstanceID != "node" || got[0].Timestamp.UnixMilli() != 1700000000123 {
		t.Errorf("key invalidation = %+v", got[0])
	}
	if got[1].Kind != coord.PatternInvalidation || !got[1].Matches("user:1/x") {
		t.Errorf("pattern invalidation = %+v", got[1])
	}
	if e := evs.all()[0]; string(e.Payload) != `[1,2]` || e.Topic != "e" {
		t.Errorf("event = %+v", e)
	}
}

// A handler that blocks holds up neither other subscriptions of its node
// nor other nodes; Unsubscribe from within a handler returns at once.
func TestSlowHandlerAndUnsubscribeInHandler(t *testing.T) {
	ns := nodes(t, 3)
	ctx := t.Context()
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	if _, err := ns[1].Events().Subscribe(ctx, "t", func(coord.Event) { <-block }); err != nil {
		t.Fatal(err)
	}
	var fast, other rec[coord.Event]
	var self coord.Subscription
	var selfMu sync.Mutex
	selfMu.Lock()
	self, err := ns[1].Events().Subscribe(ctx, "t", func(e coord.Event) {
		selfMu.Lock()
		s := self
		selfMu.Unlock()
		s.Unsubscribe()
		fast.add(e)
	})
	selfMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ns[2].Events().Subscribe(ctx, "t", other.add); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_ = ns[0].Events().Publish(ctx, "t", i)
	}
	eventually(t, 2*time.Second, func() bool { return len(other.all()) == 3 }, "other node unaffected")
	if !closedWithin(self.Done(), 2*time.Second) {
		t.Fatal("Done of a subscription that unsubscribed in its handler")
	}
	if n := len(fast.all()); n != 1 {
		t.Errorf("handler ran %d times after Unsubscribe in its first call", n)
	}
}

func TestCloseWaitsForHandler(t *testing.T) {
	ns := nodes(t, 2)
	ctx := t.Context()
	entered := make(chan struct{})
	release := make(chan struct{})
	var finished bool
	sub, err := ns[1].Invalidator().Subscribe(ctx, func(coord.Invalidation) {
		close(entered)
		<-release
		finished = true
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = ns[0].Invalidator().Invalidate(ctx, "k", nil)
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- ns[1].Close(context.Background()) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a handler was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if !finished {
		t.Error("Close returned before the handler finished")
	}
	select {
	case <-sub.Done():
	default:
		t.Error("Done open after Close returned")
	}
}

func TestPanicCountedAndMetadataCopied(t *testing.T) {
	ns := nodes(t, 2)
	ctx := t.Context()
	var r rec[coord.Invalidation]
	calls := 0
	_, err := ns[1].Invalidator().Subscribe(ctx, func(inv coord.Invalidation) {
		calls++
		if calls == 1 {
			panic("boom")
		}
		r.add(inv)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ns[1].Invalidator().Subscribe(ctx, func(inv coord.Invalidation) {
		if len(inv.Metadata) > 0 {
			inv.Metadata[0] = 'X' // must not reach the other subscriber
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = ns[0].Invalidator().Invalidate(ctx, "a", nil)
	_ = ns[0].Invalidator().Invalidate(ctx, "b", json.RawMessage(`{"v":1}`))
	eventually(t, 2*time.Second, func() bool { return len(r.all()) == 1 }, "delivery after a panic")
	if got := r.all()[0]; got.Key != "b" || string(got.Metadata) != `{"v":1}` {
		t.Errorf("got %+v", got)
	}
	if p := ns[1].Invalidator().Stats().Panics; p != 1 {
		t.Errorf("Panics = %d", p)
	}
}
