package logging

import (
	"context"
	"log/slog"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// Jobs decorates next with logging: Due, Complete and Fail are logged with
// the job's name, its period and the period's index (Due also whether the
// period is done and its failures). A nil m or next gives next unchanged.
func (m *Middleware) Jobs(next coord.Jobs) coord.Jobs {
	if m == nil || next == nil {
		return next
	}
	return &jobs{m: m, next: next}
}

type jobs struct {
	m    *Middleware
	next coord.Jobs
}

var _ coord.Jobs = (*jobs)(nil)

// Unwrap returns the decorated Jobs.
func (j *jobs) Unwrap() coord.Jobs { return j.next }

// As forwards to the decorated Jobs (see coord.As).
func (j *jobs) As(target any) bool { return coord.As(j.next, target) }

func (j *jobs) Due(ctx context.Context, job string, period time.Duration) (coord.JobSlot, error) {
	m := j.m
	if !m.on(ctx) {
		return j.next.Due(ctx, job, period)
	}
	start := m.clock.Now()
	s, err := j.next.Due(ctx, job, period)
	m.done(ctx, obs.JobDue, start, err, func() []slog.Attr {
		return []slog.Attr{name("job", job), slog.Duration("period", period), slog.Int64("index", s.Index),
			slog.Bool("done", s.Done), slog.Int("failures", s.Failures)}
	})
	return s, err
}

func (j *jobs) Complete(ctx context.Context, job string, slot coord.JobSlot) error {
	return j.record(ctx, obs.JobComplete, job, slot, j.next.Complete)
}

func (j *jobs) Fail(ctx context.Context, job string, slot coord.JobSlot) error {
	return j.record(ctx, obs.JobFail, job, slot, j.next.Fail)
}

func (j *jobs) record(ctx context.Context, op obs.Op, job string, slot coord.JobSlot, call func(context.Context, string, coord.JobSlot) error) error {
	m := j.m
	if !m.on(ctx) {
		return call(ctx, job, slot)
	}
	start := m.clock.Now()
	err := call(ctx, job, slot)
	m.done(ctx, op, start, err, func() []slog.Attr {
		return []slog.Attr{name("job", job), slog.Duration("period", slot.Period), slog.Int64("index", slot.Index)}
	})
	return err
}
