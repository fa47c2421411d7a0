package tracing_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/middleware/tracing"
	goredis "github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recorder is a Tracer whose spans land in memory.
type recorder struct {
	exp    *tracetest.InMemoryExporter
	tp     *sdktrace.TracerProvider
	tracer *tracing.Tracer
}

func newRecorder(t *testing.T, opts ...tracing.Option) *recorder {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &recorder{exp: exp, tp: tp, tracer: tracing.New(append([]tracing.Option{tracing.WithTracerProvider(tp)}, opts...)...)}
}

// spans returns the ended spans named "coord "+op.
func (r *recorder) spans(op string) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range r.exp.GetSpans() {
		if s.Name == "coord "+op {
			out = append(out, s)
		}
	}
	return out
}

// one returns the one ended span of op, failing the test otherwise.
func (r *recorder) one(t *testing.T, op string) tracetest.SpanStub {
	t.Helper()
	s := r.spans(op)
	if len(s) != 1 {
		t.Fatalf("%d spans %q, want 1 (all: %v)", len(s), op, r.names())
	}
	return s[0]
}

// eventually waits up to 2 s for n spans of op.
func (r *recorder) eventually(t *testing.T, op string, n int) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		s := r.spans(op)
		if len(s) >= n {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d spans %q within 2s, want %d (all: %v)", len(s), op, n, r.names())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *recorder) names() []string {
	var n []string
	for _, s := range r.exp.GetSpans() {
		n = append(n, s.Name)
	}
	return n
}

func attr(s tracetest.SpanStub, k attribute.Key) (attribute.Value, bool) {
	for _, a := range s.Attributes {
		if a.Key == k {
			return a.Value, true
		}
	}
	return attribute.Value{}, false
}

func wantAttr(t *testing.T, s tracetest.SpanStub, k attribute.Key, want any) {
	t.Helper()
	v, ok := attr(s, k)
	if !ok {
		t.Fatalf("span %q has no %s (attributes %v)", s.Name, k, s.Attributes)
	}
	if got := v.AsInterface(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("span %q: %s = %v, want %v", s.Name, k, got, want)
	}
}

// nodes returns two memory nodes of one hub, decorated by r.
func nodes(t *testing.T, r *recorder) (*memory.Hub, coord.Backend, coord.Backend) {
	hub := memory.NewHub(nil)
	a := r.tracer.Backend(hub.NewNode(&memory.NodeOptions{InstanceID: "a"}))
	b := r.tracer.Backend(hub.NewNode(&memory.NodeOptions{InstanceID: "b"}))
	t.Cleanup(func() {
		_ = a.Close(context.Background())
		_ = b.Close(context.Background())
	})
	return hub, a, b
}

func TestLockSpans(t *testing.T) {
	r := newRecorder(t)
	_, a, _ := nodes(t, r)
	ctx := t.Context()
	l, err := a.Locker().Acquire(ctx, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Locker().Locked(ctx, "job-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TTL(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Extend(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	acq := r.one(t, "lock.acquire")
	wantAttr(t, acq, tracing.AttrOperation, "lock.acquire")
	wantAttr(t, acq, tracing.AttrResource, "job-1")
	wantAttr(t, acq, tracing.AttrOutcome, "ok")
	wantAttr(t, acq, tracing.AttrFence, l.Fence())
	if v, ok := attr(acq, tracing.AttrWaitMS); !ok || v.AsFloat64() < 0 {
		t.Fatalf("wait_ms %v, %v", v.AsFloat64(), ok)
	}
	if acq.SpanKind != trace.SpanKindClient || acq.Status.Code != codes.Unset {
		t.Fatalf("acquire span kind %v status %v", acq.SpanKind, acq.Status)
	}
	wantAttr(t, r.one(t, "lock.locked"), tracing.AttrHeld, true)
	for _, op := range []string{"lock.ttl", "lock.extend", "lock.release"} {
		s := r.one(t, op)
		wantAttr(t, s, tracing.AttrResource, "job-1")
		wantAttr(t, s, tracing.AttrFence, l.Fence())
		wantAttr(t, s, tracing.AttrOutcome, "ok")
		if len(s.Links) != 1 || s.Links[0].SpanContext.SpanID() != acq.SpanContext.SpanID() {
			t.Fatalf("%s links %v, want the acquire span", op, s.Links)
		}
		if len(s.Events) != 0 {
			t.Fatalf("%s events %v", op, s.Events)
		}
	}
	if len(r.spans("lock.lost")) != 0 {
		t.Fatal("a released lease was recorded lost")
	}
}

func TestWithoutNames(t *testing.T) {
	r := newRecorder(t, tracing.WithoutNames())
	_, a, _ := nodes(t, r)
	l, err := a.Locker().Acquire(t.Context(), "job-1")
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Release(t.Context())
	if err := a.Events().Publish(t.Context(), "topic-1", nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range r.exp.GetSpans() {
		for _, k := range []attribute.Key{tracing.AttrResource, tracing.AttrTopic, tracing.AttrKey} {
			if v, ok := attr(s, k); ok {
				t.Fatalf("span %q has %s=%v with WithoutNames", s.Name, k, v.String())
			}
		}
	}
}

func TestLongNameCut(t *testing.T) {
	r := newRecorder(t)
	_, a, _ := nodes(t, r)
	name := strings.Repeat("é", 200) // 400 bytes
	if err := a.Invalidator().Invalidate(t.Context(), name, nil); err != nil {
		t.Fatal(err)
	}
	v, _ := attr(r.one(t, "invalidator.invalidate"), tracing.AttrKey)
	if got := v.AsString(); len(got) > tracing.MaxNameAttr || !strings.HasPrefix(name, got) || got == "" {
		t.Fatalf("key attribute of %d bytes: %q", len(got), got)
	}
}

// TestOutcomesNotErrors: "not acquired" and "not found" are outcomes
// with the status unset; bad input is an error.
func TestOutcomesNotErrors(t *testing.T) {
	r := newRecorder(t)
	_, a, b := nodes(t, r)
	ctx := t.Context()
	l, err := a.Locker().Acquire(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.WithoutCancel(ctx))
	if _, err := b.Locker().Acquire(ctx, "busy", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Fatalf("Acquire of a held lease: %v", err)
	}
	gone, err := a.Sessions().Create(ctx, "u", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Sessions().Delete(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sessions().Get(ctx, gone.ID); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("Get of an unknown session: %v", err)
	}
	if _, err := b.Locker().Acquire(ctx, ""); !errors.Is(err, coord.ErrInvalid) {
		t.Fatalf("Acquire of an empty name: %v", err)
	}
	var notAcq, invalid int
	for _, s := range r.spans("lock.acquire") {
		out, _ := attr(s, tracing.AttrOutcome)
		switch out.AsString() {
		case "not_acquired":
			notAcq++
			if s.Status.Code != codes.Unset {
				t.Fatalf("not_acquired span status %v", s.Status)
			}
			if _, ok := attr(s, tracing.AttrFence); ok {
				t.Fatal("not_acquired span has a fence")
			}
		case "invalid":
			invalid++
			if s.Status.Code != codes.Error || s.Status.Description != "invalid" {
				t.Fatalf("invalid span status %v", s.Status)
			}
		}
	}
	if notAcq != 1 || invalid != 1 {
		t.Fatalf("%d not_acquired and %d invalid acquire spans, want 1 each", notAcq, invalid)
	}
	get := r.one(t, "sessions.get")
	wantAttr(t, get, tracing.AttrOutcome, "not_found")
	if get.Status.Code != codes.Unset {
		t.Fatalf("not_found span status %v", get.Status)
	}
	for _, s := range r.exp.GetSpans() {
		if len(s.Events) != 0 {
			t.Fatalf("span %q has events %v: errors are not recorded as events", s.Name, s.Events)
		}
	}
}

func TestOutcomeClassification(t *testing.T) {
	for _, c := range []struct {
		err     error
		out     string
		failure bool
	}{
		{nil, "ok", false},
		{coord.ErrNotAcquired, "not_acquired", false},
		{errors.Join(coord.ErrNotAcquired, context.DeadlineExceeded), "not_acquired", false},
		{fmt.Errorf("x: %w", coord.ErrNotFound), "not_found", false},
		{coord.ErrUnavailable, "unavailable", true},
		{coord.ErrExpired, "expired", true},
		{errors.New("boom"), "other", true},
	} {
		if got := tracing.Outcome(c.err); got != c.out || tracing.IsFailure(c.err) != c.failure {
			t.Errorf("%v: outcome %q failure %v, want %q %v", c.err, got, tracing.IsFailure(c.err), c.out, c.failure)
		}
	}
}

// leaseLost checks that span records the lease's loss, linked to acq.
func leaseLost(t *testing.T, s, acq tracetest.SpanStub) {
	t.Helper()
	n := 0
	for _, e := range s.Events {
		if e.Name == tracing.EventLeaseLost {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("span %q has %d %s events (%v), want 1", s.Name, n, tracing.EventLeaseLost, s.Events)
	}
	if len(s.Links) != 1 || s.Links[0].SpanContext.SpanID() != acq.SpanContext.SpanID() ||
		s.Links[0].SpanContext.TraceID() != acq.SpanContext.TraceID() {
		t.Fatalf("span %q links %v, want the acquire span %v", s.Name, s.Links, acq.SpanContext.SpanID())
	}
}

// TestLeaseLossFoundByExtend: an Extend that finds the lease gone records
// the loss on its span, linked to the Acquire span, once. (Without the
// watch of Done, which could otherwise see the loss first.)
func TestLeaseLossFoundByExtend(t *testing.T) {
	r := newRecorder(t, tracing.WithoutLossWatch())
	_, a, b := nodes(t, r)
	ctx := t.Context()
	l, err := a.Locker().Acquire(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Locker().ForceRelease(ctx, "job"); !ok || err != nil {
		t.Fatalf("ForceRelease: %v, %v", ok, err)
	}
	if err := l.Extend(ctx, time.Minute); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("Extend of a lost lease: %v", err)
	}
	_ = l.Release(ctx)
	acq := r.one(t, "lock.acquire")
	ext := r.one(t, "lock.extend")
	leaseLost(t, ext, acq)
	if ext.Status.Code != codes.Error {
		t.Fatalf("extend of a lost lease: status %v", ext.Status)
	}
	if rel := r.one(t, "lock.release"); len(rel.Events) != 0 {
		t.Fatalf("the loss was recorded twice: release events %v", rel.Events)
	}
	if s := r.spans("lock.lost"); len(s) != 0 {
		t.Fatalf("the loss was recorded twice: %d lock.lost spans", len(s))
	}
}

// TestLeaseLossRecordedOnce: with the watch of Done and calls that find
// the loss racing, the loss is recorded exactly once, linked to the
// Acquire span.
func TestLeaseLossRecordedOnce(t *testing.T) {
	r := newRecorder(t)
	_, a, b := nodes(t, r)
	ctx := t.Context()
	l, err := a.Locker().Acquire(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Locker().ForceRelease(ctx, "job"); !ok || err != nil {
		t.Fatalf("ForceRelease: %v, %v", ok, err)
	}
	if err := l.Extend(ctx, time.Minute); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("Extend of a lost lease: %v", err)
	}
	_, _ = l.TTL(ctx)
	_ = l.Release(ctx)
	acq := r.one(t, "lock.acquire")
	// The watch may have won and still be ending its span: wait for it.
	var with []tracetest.SpanStub
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		with = with[:0]
		for _, s := range r.exp.GetSpans() {
			for _, e := range s.Events {
				if e.Name == tracing.EventLeaseLost {
					with = append(with, s)
				}
			}
		}
		if len(with) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(with) != 1 {
		t.Fatalf("%d lease_lost events, want 1", len(with))
	}
	leaseLost(t, with[0], acq)
}

// TestLeaseLossWatched: a lease lost while auto-renewed, with no call to
// find it, is recorded on a span of its own linked to the Acquire span.
func TestLeaseLossWatched(t *testing.T) {
	r := newRecorder(t)
	_, a, b := nodes(t, r)
	ctx := t.Context()
	l, err := a.Locker().Acquire(ctx, "job", coord.WithTTL(300*time.Millisecond), coord.WithAutoRenew())
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Locker().ForceRelease(ctx, "job"); !ok || err != nil {
		t.Fatalf("ForceRelease: %v, %v", ok, err)
	}
	lost := r.eventually(t, "lock.lost", 1)
	select {
	case <-l.Done():
	default:
		t.Fatal("lock.lost recorded before Done closed")
	}
	leaseLost(t, lost[0], r.one(t, "lock.acquire"))
	wantAttr(t, lost[0], tracing.AttrResource, "job")
	_ = l.Release(ctx)
	if s := r.spans("lock.lost"); len(s) != 1 {
		t.Fatalf("%d lock.lost spans, want 1", len(s))
	}
}

// TestNoSecretsInSpans runs every operation and scans every recorded
// span (name, attributes, events, links, status) for lease tokens,
// session IDs, handles and user IDs.
func TestNoSecretsInSpans(t *testing.T) {
	r := newRecorder(t)
	_, a, b := nodes(t, r)
	ctx := t.Context()
	var secrets []string
	l, err := a.Locker().Acquire(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, l.Token())
	_, _ = l.TTL(ctx)
	_ = l.Extend(ctx, time.Minute)
	_ = l.Release(ctx)
	_ = l.Release(ctx)
	_ = l.Extend(ctx, time.Minute) // lost: the loss event too

	const user = "user-5f3a9"
	s := a.Sessions()
	sess, err := s.Create(ctx, user, map[string]any{"secret-data": "d4t4-v4lue"})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, sess.ID, sess.Handle, user, "d4t4-v4lue")
	_, _ = s.Get(ctx, sess.ID)
	_, _ = s.Touch(ctx, sess.ID)
	_ = s.Update(ctx, sess.ID, map[string]any{"k": 1})
	_, _ = s.Exists(ctx, sess.ID)
	_ = s.Extend(ctx, sess.ID, time.Hour)
	rot, err := s.Rotate(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, rot.ID, rot.Handle)
	_, _ = s.Get(ctx, sess.ID) // the old token: not found
	list, _ := s.ByUser(ctx, user)
	for _, x := range list {
		secrets = append(secrets, x.Handle)
	}
	_ = s.Revoke(ctx, user, rot.Handle)
	_, _ = s.Get(ctx, "not-a-token-"+strings.Repeat("x", 30)) // invalid
	_, _ = s.Create(ctx, user, nil)
	_, _ = s.DeleteByUser(ctx, user)
	_ = s.Delete(ctx, rot.ID)
	_, _ = s.Count(ctx)
	_, _ = s.Stats(ctx)
	_, _ = s.Cleanup(ctx)

	got := make(chan coord.Event, 1)
	sub, err := b.Events().Subscribe(ctx, "t", func(ev coord.Event) { got <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := a.Events().Publish(ctx, "t", map[string]string{"token": sess.ID}); err != nil {
		t.Fatal(err)
	}
	<-got
	r.eventually(t, "events.receive", 1)

	spans := r.exp.GetSpans()
	if len(spans) < 25 {
		t.Fatalf("only %d spans recorded", len(spans))
	}
	for _, sp := range spans {
		var text []string
		text = append(text, sp.Name, sp.Status.Description)
		for _, kv := range sp.Attributes {
			text = append(text, string(kv.Key), kv.Value.String())
		}
		for _, e := range sp.Events {
			text = append(text, e.Name)
			for _, kv := range e.Attributes {
				text = append(text, string(kv.Key), kv.Value.String())
			}
		}
		for _, ln := range sp.Links {
			for _, kv := range ln.Attributes {
				text = append(text, string(kv.Key), kv.Value.String())
			}
		}
		all := strings.Join(text, "\x00")
		for _, sec := range secrets {
			if sec != "" && strings.Contains(all, sec) {
				t.Errorf("span %q records a secret (%d bytes)", sp.Name, len(sec))
			}
		}
	}
}

// crossing publishes an event and an invalidation from pub to sub inside
// a parent span and checks that the receiving handlers' spans belong to
// the publisher's trace.
func crossing(t *testing.T, r *recorder, pub, sub coord.Backend) {
	ctx, parent := r.tp.Tracer("test").Start(t.Context(), "request")
	defer parent.End()
	want := parent.SpanContext().TraceID()

	evs := make(chan coord.Event, 1)
	s1, err := sub.Events().Subscribe(t.Context(), "orders", func(ev coord.Event) { evs <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Unsubscribe()
	invs := make(chan coord.Invalidation, 4)
	s2, err := sub.Invalidator().Subscribe(t.Context(), func(inv coord.Invalidation) {
		if inv.Kind == coord.KeyInvalidation {
			invs <- inv
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Unsubscribe()

	if err := pub.Events().Publish(ctx, "orders", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Invalidator().Invalidate(ctx, "user:1", nil); err != nil {
		t.Fatal(err)
	}
	var ev coord.Event
	var inv coord.Invalidation
	for _, ch := range []func() bool{
		func() bool {
			select {
			case ev = <-evs:
				return true
			case <-time.After(2 * time.Second):
				return false
			}
		},
		func() bool {
			select {
			case inv = <-invs:
				return true
			case <-time.After(2 * time.Second):
				return false
			}
		},
	} {
		if !ch() {
			t.Fatal("nothing delivered within 2s")
		}
	}
	for _, c := range []struct {
		op, pubOp string
		carrier   coord.TraceCarrier
	}{{"events.receive", "events.publish", ev.Trace}, {"invalidator.receive", "invalidator.invalidate", inv.Trace}} {
		recv := r.eventually(t, c.op, 1)[0]
		pubSpan := r.one(t, c.pubOp)
		if recv.SpanContext.TraceID() != want || pubSpan.SpanContext.TraceID() != want {
			t.Fatalf("%s trace %v, %s trace %v, want the request's %v", c.op, recv.SpanContext.TraceID(), c.pubOp, pubSpan.SpanContext.TraceID(), want)
		}
		if recv.Parent.SpanID() != pubSpan.SpanContext.SpanID() || !recv.Parent.IsRemote() {
			t.Fatalf("%s parent %v, want the remote publish span %v", c.op, recv.Parent.SpanID(), pubSpan.SpanContext.SpanID())
		}
		if recv.SpanKind != trace.SpanKindConsumer || pubSpan.SpanKind != trace.SpanKindProducer {
			t.Fatalf("kinds %v, %v", recv.SpanKind, pubSpan.SpanKind)
		}
		// The handler's carrier names its consumer span.
		sc := trace.SpanContextFromContext(r.tracer.Extract(context.Background(), c.carrier))
		if sc.TraceID() != want || sc.SpanID() != recv.SpanContext.SpanID() {
			t.Fatalf("%s: handler's carrier %v, want the consumer span %v", c.op, sc, recv.SpanContext)
		}
	}
	wantAttr(t, r.one(t, "events.receive"), tracing.AttrTopic, "orders")
	wantAttr(t, r.one(t, "invalidator.receive"), tracing.AttrKey, "user:1")
	wantAttr(t, r.one(t, "invalidator.receive"), tracing.AttrKind, "key")
}

func TestTraceCrossesMemoryNodes(t *testing.T) {
	r := newRecorder(t)
	_, a, b := nodes(t, r)
	crossing(t, r, a, b)
}

// redisPair returns two Backends on one miniredis, decorated by r, and a
// raw client on it.
func redisPair(t *testing.T, r *recorder) (coord.Backend, coord.Backend, *goredis.Client) {
	m := miniredis.RunT(t)
	mk := func(id string) coord.Backend {
		c := goredis.NewClient(&goredis.Options{Addr: m.Addr()})
		be, err := coordredis.New(c, &coordredis.Options{InstanceID: id})
		if err != nil {
			t.Fatal(err)
		}
		b := r.tracer.Backend(be)
		t.Cleanup(func() {
			_ = b.Close(context.Background())
			_ = c.Close()
		})
		return b
	}
	raw := goredis.NewClient(&goredis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = raw.Close() })
	return mk("a"), mk("b"), raw
}

func TestTraceCrossesRedisInstances(t *testing.T) {
	r := newRecorder(t)
	a, b, _ := redisPair(t, r)
	crossing(t, r, a, b)
}

// nodeStyle delivers an event without a trace field, as the Node fleet
// publishes it, and checks it reaches the handler in a new trace.
func nodeStyle(t *testing.T, r *recorder, sub coord.Backend, publish func(msg []byte)) {
	got := make(chan coord.Event, 1)
	s, err := sub.Events().Subscribe(t.Context(), "shard-moved", func(ev coord.Event) { got <- ev })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	publish([]byte(`{"instanceId":"node-bot-1","event":"shard-moved","payload":{"shard":3},"timestamp":1700000000000}`))
	select {
	case ev := <-got:
		if string(ev.Payload) != `{"shard":3}` || ev.InstanceID != "node-bot-1" {
			t.Fatalf("delivered %+v", ev)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the Node-style event was not delivered within 2s")
	}
	recv := r.eventually(t, "events.receive", 1)[0]
	if recv.Parent.IsValid() || !recv.SpanContext.IsValid() {
		t.Fatalf("receive span of an untraced message: parent %v, context %v", recv.Parent, recv.SpanContext)
	}
	wantAttr(t, recv, tracing.AttrInstance, "node-bot-1")
}

func TestNodeStyleMessageMemory(t *testing.T) {
	r := newRecorder(t)
	hub, _, b := nodes(t, r)
	nodeStyle(t, r, b, func(msg []byte) {
		if err := hub.PublishRaw(memory.ChannelEvent, msg); err != nil {
			t.Fatal(err)
		}
	})
}

func TestNodeStyleMessageRedis(t *testing.T) {
	r := newRecorder(t)
	_, b, raw := redisPair(t, r)
	nodeStyle(t, r, b, func(msg []byte) {
		if err := raw.Publish(t.Context(), "cgn:shard:event", msg).Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestHandlerPanic: a panicking handler's span ends with outcome panic.
func TestHandlerPanic(t *testing.T) {
	r := newRecorder(t)
	_, a, b := nodes(t, r)
	s, err := b.Events().Subscribe(t.Context(), "p", func(coord.Event) { panic("handler bug") })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	if err := a.Events().Publish(t.Context(), "p", nil); err != nil {
		t.Fatal(err)
	}
	recv := r.eventually(t, "events.receive", 1)[0]
	wantAttr(t, recv, tracing.AttrOutcome, "panic")
	if recv.Status.Code != codes.Error {
		t.Fatalf("status %v", recv.Status)
	}
}

// TestUnwrapAndAs: the decorators forward As and Unwrap.
func TestUnwrapAndAs(t *testing.T) {
	r := newRecorder(t)
	hub := memory.NewHub(nil)
	n := hub.NewNode(nil)
	b := r.tracer.Backend(n)
	defer b.Close(context.Background())
	var got *memory.Node
	if !coord.As(b, &got) || got != n {
		t.Fatalf("coord.As through the Backend: %v", got)
	}
	if u, ok := b.(interface{ Unwrap() coord.Backend }); !ok || u.Unwrap() != n {
		t.Fatal("Backend does not unwrap to the node")
	}
	if u, ok := b.Locker().(interface{ Unwrap() coord.Locker }); !ok || u.Unwrap() != n.Locker() {
		t.Fatal("Locker does not unwrap to the node's")
	}
	if u, ok := b.Sessions().(interface{ Unwrap() coord.SessionStore }); !ok || u.Unwrap() != n.Sessions() {
		t.Fatal("SessionStore does not unwrap to the node's")
	}
	if u, ok := b.Invalidator().(interface{ Unwrap() coord.Invalidator }); !ok || u.Unwrap() != n.Invalidator() {
		t.Fatal("Invalidator does not unwrap to the node's")
	}
	if u, ok := b.Events().(interface{ Unwrap() coord.EventBus }); !ok || u.Unwrap() != n.Events() {
		t.Fatal("EventBus does not unwrap to the node's")
	}
	var nilTracer *tracing.Tracer
	if nilTracer.Backend(n) != coord.Backend(n) {
		t.Fatal("a nil Tracer decorated")
	}
}
