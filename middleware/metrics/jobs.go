package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/middleware/internal/obs"
)

// Results of job_runs_total.
const (
	jobSkipped   = "skipped"   // Due found the period already done
	jobCompleted = "completed" // Complete recorded a run
	jobFailed    = "failed"    // Fail recorded a failed run
)

// jobMetrics is job_runs_total{job,result}; the job label goes through
// [Options.ResourceLabel], as lock resources do.
type jobMetrics struct {
	vec    *prometheus.CounterVec
	labels labelCache[[3]prometheus.Counter] // skipped, completed, failed
}

var _ prometheus.Collector = (*jobMetrics)(nil)

func newJobMetrics(ns string, mapping func(string) string) *jobMetrics {
	j := &jobMetrics{vec: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "job_runs_total",
		Help: "Periodic jobs: periods found already done (skipped), runs recorded (completed) and failed runs recorded (failed), by job.",
	}, []string{"job", "result"})}
	j.labels.init(mapping, func(label string) [3]prometheus.Counter {
		var c [3]prometheus.Counter
		for i, r := range [3]string{jobSkipped, jobCompleted, jobFailed} {
			m, err := j.vec.GetMetricWithLabelValues(label, r)
			if err != nil {
				m = j.vec.WithLabelValues("invalid", r)
			}
			c[i] = m
		}
		return c
	})
	return j
}

// Describe implements prometheus.Collector.
func (j *jobMetrics) Describe(ch chan<- *prometheus.Desc) { j.vec.Describe(ch) }

// Collect implements prometheus.Collector.
func (j *jobMetrics) Collect(ch chan<- prometheus.Metric) { j.vec.Collect(ch) }

// Jobs decorates next with metrics: operation latency and errors, and
// job_runs_total{job,result}, result "skipped" (a Due that found the
// period done), "completed" (a Complete) or "failed" (a Fail), the job
// from [Options.ResourceLabel]. A nil m or next gives next unchanged.
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

func (j *jobs) Due(ctx context.Context, job string, period time.Duration) (s coord.JobSlot, err error) {
	defer j.m.done(obs.JobDue, j.m.clock.Now(), &err)
	s, err = j.next.Due(ctx, job, period)
	if err == nil && s.Done {
		j.m.jobs.labels.get(job)[0].Inc()
	}
	return s, err
}

func (j *jobs) Complete(ctx context.Context, job string, slot coord.JobSlot) (err error) {
	defer j.m.done(obs.JobComplete, j.m.clock.Now(), &err)
	if err = j.next.Complete(ctx, job, slot); err == nil {
		j.m.jobs.labels.get(job)[1].Inc()
	}
	return err
}

func (j *jobs) Fail(ctx context.Context, job string, slot coord.JobSlot) (err error) {
	defer j.m.done(obs.JobFail, j.m.clock.Now(), &err)
	if err = j.next.Fail(ctx, job, slot); err == nil {
		j.m.jobs.labels.get(job)[2].Inc()
	}
	return err
}
