package tracing

import (
	"context"
	"time"

	"github.com/cgn-bot/coord"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Attributes of the spans of [coord.Jobs].
const (
	AttrJob      = attribute.Key("coord.job")           // a periodic job's name
	AttrJobIndex = attribute.Key("coord.job.index")     // the index of the job's period
	AttrJobDone  = attribute.Key("coord.job.done")      // Due's answer: the period is done
	AttrPeriodMS = attribute.Key("coord.job.period_ms") // the job's period, in ms
)

// Jobs decorates next with spans: Due (job, period, index, done), Complete
// and Fail (job, period, index). A nil t or next gives next unchanged.
func (t *Tracer) Jobs(next coord.Jobs) coord.Jobs {
	if t == nil || next == nil {
		return next
	}
	return &jobs{t: t, next: next}
}

type jobs struct {
	t    *Tracer
	next coord.Jobs
}

var _ coord.Jobs = (*jobs)(nil)

// Unwrap returns the decorated Jobs.
func (j *jobs) Unwrap() coord.Jobs { return j.next }

// As forwards to the decorated Jobs (see coord.As).
func (j *jobs) As(target any) bool { return coord.As(j.next, target) }

func (j *jobs) attrs(job string, period time.Duration) []attribute.KeyValue {
	return append(j.t.name(AttrJob, job), AttrPeriodMS.Float64(ms(period)))
}

func (j *jobs) Due(ctx context.Context, job string, period time.Duration) (coord.JobSlot, error) {
	ctx, span := j.t.start(ctx, "jobs.due", trace.SpanKindClient, j.attrs(job, period)...)
	s, err := j.next.Due(ctx, job, period)
	end(span, err, AttrJobIndex.Int64(s.Index), AttrJobDone.Bool(s.Done))
	return s, err
}

func (j *jobs) Complete(ctx context.Context, job string, slot coord.JobSlot) error {
	ctx, span := j.t.start(ctx, "jobs.complete", trace.SpanKindClient, append(j.attrs(job, slot.Period), AttrJobIndex.Int64(slot.Index))...)
	err := j.next.Complete(ctx, job, slot)
	end(span, err)
	return err
}

func (j *jobs) Fail(ctx context.Context, job string, slot coord.JobSlot) error {
	ctx, span := j.t.start(ctx, "jobs.fail", trace.SpanKindClient, append(j.attrs(job, slot.Period), AttrJobIndex.Int64(slot.Index))...)
	err := j.next.Fail(ctx, job, slot)
	end(span, err)
	return err
}
