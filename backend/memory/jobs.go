package memory

import (
	"context"
	"sync"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

// Jobs is a [Backend]'s [coord.Jobs]: the records are the hub's, on the
// hub's clock (the process's clock, shared by every node of the hub). A
// record is dropped once its period has ended, so the hub's memory does
// not grow with the number of jobs ever run.
//
// A Jobs is safe for concurrent use by multiple goroutines.
type Jobs struct{ n *Backend }

var _ coord.Jobs = (*Jobs)(nil)

// jobRecord is a job's record: the one period anything was recorded in.
type jobRecord struct {
	period, index int64 // microseconds; the period's index
	done          bool
	failures      int
	end           int64 // when the period ends (µs since the epoch)
}

// jobTable holds the hub's job records. Its zero value is ready.
type jobTable struct {
	mu      sync.Mutex
	recs    map[string]*jobRecord
	touches int // operations since the last sweep
}

// nowMicro is the hub's clock for jobs, in microseconds since the epoch.
func nowMicro() int64 { return time.Now().UnixMicro() }

// sweepLocked drops the records whose period has ended, once every
// len(recs) operations, so sweeping costs O(1) per operation amortized.
func (t *jobTable) sweepLocked(now int64) {
	t.touches++
	if t.touches < len(t.recs) {
		return
	}
	t.touches = 0
	for k, r := range t.recs {
		if r.end <= now {
			delete(t.recs, k)
		}
	}
}

// Due reports job's current period on the hub's clock.
func (j *Jobs) Due(_ context.Context, job string, period time.Duration) (coord.JobSlot, error) {
	p, err := driver.JobPeriod(job, period)
	if err != nil {
		return coord.JobSlot{}, err
	}
	if j.n.closed.Load() {
		return coord.JobSlot{}, errClosed("Jobs.Due")
	}
	t := &j.n.hub.jobs
	t.mu.Lock()
	defer t.mu.Unlock()
	now := nowMicro()
	t.sweepLocked(now)
	if r := t.recs[job]; r != nil {
		return driver.JobSlotAt(now, p, r.period, r.index, r.done, r.failures), nil
	}
	return driver.JobSlotAt(now, p, 0, -1, false, 0), nil
}

// Complete records that job ran in slot's period.
func (j *Jobs) Complete(_ context.Context, job string, slot coord.JobSlot) error {
	return j.record("Jobs.Complete", job, slot, func(r *jobRecord) { r.done = true })
}

// Fail records a failed run of job in slot's period.
func (j *Jobs) Fail(_ context.Context, job string, slot coord.JobSlot) error {
	return j.record("Jobs.Fail", job, slot, func(r *jobRecord) { r.failures++ })
}

// record applies change to job's record of slot's period when that
// period is the current one.
func (j *Jobs) record(op, job string, slot coord.JobSlot, change func(*jobRecord)) error {
	p, err := driver.JobSlotPeriod(job, slot)
	if err != nil {
		return err
	}
	if j.n.closed.Load() {
		return errClosed(op)
	}
	t := &j.n.hub.jobs
	t.mu.Lock()
	defer t.mu.Unlock()
	now := nowMicro()
	t.sweepLocked(now)
	cur := now / p
	switch {
	case slot.Index > cur:
		return driver.ErrFutureSlot(job, slot, cur)
	case slot.Index < cur:
		return nil // the period has ended: nothing to record
	}
	r := t.recs[job]
	if r == nil || r.period != p || r.index != cur {
		r = &jobRecord{period: p, index: cur, end: (cur + 1) * p}
		if t.recs == nil {
			t.recs = make(map[string]*jobRecord)
		}
		t.recs[job] = r
	}
	change(r)
	return nil
}
