package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/middleware/metrics"
)

func TestJobs(t *testing.T) {
	m, reg := newMiddleware(t, &metrics.Options{ResourceLabel: metrics.Allow("report")})
	node := memory.NewHub(nil).New(nil)
	t.Cleanup(func() { _ = node.Close(context.Background()) })
	b := m.Backend(node)
	ctx := t.Context()
	const period = 97 * time.Hour
	for _, job := range []string{"report", "user:1"} {
		j := b.Jobs()
		s, err := j.Due(ctx, job, period)
		if err != nil || s.Done {
			t.Fatalf("Due = %+v, %v", s, err)
		}
		if err := j.Fail(ctx, job, s); err != nil {
			t.Fatalf("Fail: %v", err)
		}
		if err := j.Complete(ctx, job, s); err != nil {
			t.Fatalf("Complete: %v", err)
		}
		for range 2 {
			if s, err := j.Due(ctx, job, period); err != nil || !s.Done {
				t.Fatalf("Due after Complete = %+v, %v", s, err)
			}
		}
	}
	for _, job := range []string{"report", "other"} {
		expect(t, reg, 2, "coord_job_runs_total", "job", job, "result", "skipped")
		expect(t, reg, 1, "coord_job_runs_total", "job", job, "result", "completed")
		expect(t, reg, 1, "coord_job_runs_total", "job", job, "result", "failed")
	}
	if _, ok := value(t, reg, "coord_job_runs_total", "job", "user:1", "result", "completed"); ok {
		t.Error("a job name became a label value")
	}
	expect(t, reg, 6, "coord_operation_duration_seconds", "op", "job_due", "result", "ok")
	// A refused call is an error of its operation, not a run.
	if err := b.Jobs().Complete(ctx, "", coord.JobSlot{Period: period}); err == nil {
		t.Fatal("Complete of an empty job name succeeded")
	}
	expect(t, reg, 1, "coord_operation_errors_total", "op", "job_complete", "kind", "invalid")
	expect(t, reg, 1, "coord_job_runs_total", "job", "report", "result", "completed")
}
