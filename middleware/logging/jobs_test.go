package logging_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/middleware/logging"
)

func TestJobsLogged(t *testing.T) {
	c := newCapture(slog.LevelDebug)
	node := memory.NewHub(nil).New(nil)
	t.Cleanup(func() { _ = node.Close(context.Background()) })
	b := logging.New(slog.New(c), nil).Backend(node)
	ctx := t.Context()
	j := b.Jobs()
	s, err := j.Due(ctx, "report", time.Hour)
	if err != nil {
		t.Fatalf("Due: %v", err)
	}
	if err := j.Fail(ctx, "report", s); err != nil {
		t.Fatalf("Fail: %v", err)
	}
	if err := j.Complete(ctx, "report", coord.JobSlot{Period: time.Hour, Index: -1}); err == nil {
		t.Fatal("Complete of a negative index succeeded")
	}
	due := c.find("coord job_due")
	if len(due) != 1 || due[0].Level != slog.LevelDebug {
		t.Fatalf("job_due records = %v; want one at DEBUG", due)
	}
	if v, ok := attr(due[0], "job"); !ok || v.String() != "report" {
		t.Errorf("job_due record's job = %v; want report", v)
	}
	if v, ok := attr(due[0], "index"); !ok || v.Int64() != s.Index {
		t.Errorf("job_due record's index = %v; want %d", v, s.Index)
	}
	if fail := c.find("coord job_fail"); len(fail) != 1 {
		t.Errorf("job_fail records = %v; want one", fail)
	}
	comp := c.find("coord job_complete")
	if len(comp) != 1 || comp[0].Level != slog.LevelWarn {
		t.Errorf("job_complete records = %v; want one at WARN (refused)", comp)
	}
}
