package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

// Jobs is the Backend's [coord.Jobs]. A job's record is one hash,
// prefix + "job:{" + escaped name + "}", with the period (p, in µs), the
// index of the period it is about (i), whether the job ran in it (d) and
// its failed runs (f). Every decision is made inside a script on the
// server's clock (TIME), never an instance's. The record expires when its
// period ends, so nothing is left of jobs that no longer run.
//
// With [Options].LockReplicas, Complete WAITs for that many replicas on
// the connection that wrote the record (as an acquire does), so that a
// failover right after it does not lose the record and let the job run
// again in the same period; when fewer acknowledge, the record stays
// written and Complete returns an error wrapping [coord.ErrUnavailable]
// that says so. Fail does not WAIT: a lost failure only shortens the
// next backoff.
//
// A Jobs is safe for concurrent use by multiple goroutines.
type Jobs struct{ b *Backend }

var _ coord.Jobs = (*Jobs)(nil)

// jobKey returns the record key of job.
func (k keyspace) jobKey(job string) string {
	return k.prefix + "job:{" + escapeName(job) + "}"
}

// Due reports job's current period on the server's clock.
func (j *Jobs) Due(ctx context.Context, job string, period time.Duration) (coord.JobSlot, error) {
	p, err := driver.JobPeriod(job, period)
	if err != nil {
		return coord.JobSlot{}, err
	}
	b := j.b
	if err := b.checkOpen(); err != nil {
		return coord.JobSlot{}, err
	}
	res, err := b.sc.jobDue.Run(ctx, b.client, []string{b.keys.jobKey(job)}, p).Int64Slice()
	if err := b.fail(ctx, "job due", err); err != nil {
		return coord.JobSlot{}, err
	}
	if len(res) != 4 || res[0] < 0 || res[1] <= 0 || res[1] > p {
		return coord.JobSlot{}, fmt.Errorf("%w: coord/redis: job due: unexpected reply %v", coord.ErrUnavailable, res)
	}
	return coord.JobSlot{
		Period:   time.Duration(p) * time.Microsecond,
		Index:    res[0],
		Next:     time.Duration(res[1]) * time.Microsecond,
		Done:     res[2] == 1,
		Failures: int(res[3]),
	}, nil
}

// Complete records that job ran in slot's period.
func (j *Jobs) Complete(ctx context.Context, job string, slot coord.JobSlot) error {
	return j.record(ctx, "job complete", "done", job, slot)
}

// Fail records a failed run of job in slot's period.
func (j *Jobs) Fail(ctx context.Context, job string, slot coord.JobSlot) error {
	return j.record(ctx, "job fail", "fail", job, slot)
}

func (j *Jobs) record(ctx context.Context, op, what, job string, slot coord.JobSlot) error {
	p, err := driver.JobSlotPeriod(job, slot)
	if err != nil {
		return err
	}
	b := j.b
	if err := b.checkOpen(); err != nil {
		return err
	}
	keys := []string{b.keys.jobKey(job)}
	args := []any{p, strconv.FormatInt(slot.Index, 10), what}
	var res []int64
	acked := int64(-1)
	if what == "done" && b.opts.LockReplicas > 0 {
		var cmd *goredis.Cmd
		if cmd, acked, err = b.evalAndWait(ctx, b.sc.jobRecord, keys, args...); err == nil {
			res, err = cmd.Int64Slice()
		}
	} else {
		res, err = b.sc.jobRecord.Run(ctx, b.client, keys, args...).Int64Slice()
	}
	if err := b.fail(ctx, op, err); err != nil {
		return err
	}
	if len(res) != 2 {
		return fmt.Errorf("%w: coord/redis: %s: unexpected reply %v", coord.ErrUnavailable, op, res)
	}
	if res[0] < 0 {
		return driver.ErrFutureSlot(job, slot, res[1])
	}
	if res[0] == 1 && acked >= 0 && acked < int64(b.opts.LockReplicas) {
		return fmt.Errorf("%w: coord/redis: %s %q: recorded, but %d of %d replicas acknowledged it within %v: a failover now may lose the record and the job run again in this period",
			coord.ErrUnavailable, op, job, acked, b.opts.LockReplicas, b.opts.LockReplicaTimeout)
	}
	return nil
}
