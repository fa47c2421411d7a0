package tracing_test

import (
	"testing"
	"time"

	"github.com/cgn-bot/coord/middleware/tracing"
)

func TestJobsSpans(t *testing.T) {
	r := newRecorder(t)
	_, a, _ := nodes(t, r)
	ctx := t.Context()
	s, err := a.Jobs().Due(ctx, "report", time.Hour)
	if err != nil {
		t.Fatalf("Due: %v", err)
	}
	if err := a.Jobs().Complete(ctx, "report", s); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if err := a.Jobs().Fail(ctx, "report", s); err != nil {
		t.Fatalf("Fail: %v", err)
	}
	due := r.one(t, "jobs.due")
	wantAttr(t, due, tracing.AttrJob, "report")
	wantAttr(t, due, tracing.AttrJobIndex, s.Index)
	wantAttr(t, due, tracing.AttrJobDone, false)
	wantAttr(t, due, tracing.AttrPeriodMS, 3.6e6)
	wantAttr(t, r.one(t, "jobs.complete"), tracing.AttrJobIndex, s.Index)
	wantAttr(t, r.one(t, "jobs.fail"), tracing.AttrOutcome, "ok")
}
