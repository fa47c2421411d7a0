package tracing_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/tracing"
)

// TestLeaseShapeSpans checks the spans of the read-write locks,
// semaphores and elections: one per call, with the resource, outcome and
// fence, and the lease's own operations linked to its acquisition.
func TestLeaseShapeSpans(t *testing.T) {
	r := newRecorder(t)
	_, a, b := nodes(t, r)
	ctx := context.Background()
	w, err := a.RWLocker().Lock(ctx, "res", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.RWLocker().RLock(ctx, "res", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Fatalf("RLock beside a writer: %v", err)
	}
	lock := r.one(t, "rwlock.lock")
	wantAttr(t, lock, tracing.AttrResource, "res")
	wantAttr(t, lock, tracing.AttrFence, w.Fence())
	wantAttr(t, r.one(t, "rwlock.rlock"), tracing.AttrOutcome, "not_acquired")
	if err := w.Release(ctx); err != nil {
		t.Fatal(err)
	}
	rel := r.one(t, "lock.release")
	if len(rel.Links) != 1 || rel.Links[0].SpanContext.SpanID() != lock.SpanContext.SpanID() {
		t.Errorf("the write lease's release is not linked to its acquisition")
	}
	p, err := a.Semaphores().Acquire(ctx, "sem", 4, coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	wantAttr(t, r.one(t, "semaphore.acquire"), tracing.AttrCount, 4)
	if _, err := b.Semaphores().Holders(ctx, "sem"); err != nil {
		t.Fatal(err)
	}
	wantAttr(t, r.one(t, "semaphore.holders"), tracing.AttrCount, 1)
	if err := p.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := a.Elector().Campaign(ctx, "el", "node-a", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if l.Identity() != "node-a" {
		t.Errorf("Identity through the decorator = %q", l.Identity())
	}
	wantAttr(t, r.one(t, "election.campaign"), tracing.AttrFence, l.Fence())
	if ok, err := b.Elector().ForceRelease(ctx, "el"); err != nil || !ok {
		t.Fatalf("ForceRelease = %v, %v", ok, err)
	}
	// The deposed leader's loss is recorded on a span of its own.
	lost := r.eventually(t, "lock.lost", 1)
	if len(lost[0].Events) != 1 || lost[0].Events[0].Name != tracing.EventLeaseLost {
		t.Errorf("lock.lost span events: %v", lost[0].Events)
	}
}
