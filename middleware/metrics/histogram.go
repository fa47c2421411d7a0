package metrics

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/cgn-bot/coord/middleware/internal/obs"
	"github.com/prometheus/client_golang/prometheus"
)

// hist is a histogram of durations with fixed buckets, cheaper to observe
// than a prometheus.Histogram: one bucket search over integer bounds and
// two atomic adds. It is exported as a constant histogram at each scrape.
type hist struct {
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Int64    // nanoseconds
}

func newHist(buckets int) hist {
	return hist{counts: make([]atomic.Uint64, buckets+1)}
}

// observe records d. bounds are the upper bounds of the buckets in
// nanoseconds.
func (h *hist) observe(bounds []int64, d time.Duration) {
	i := 0
	for i < len(bounds) && int64(d) > bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// metric returns h as a constant histogram; ok is false when h has no
// observation and empty is false.
func (h *hist) metric(desc *prometheus.Desc, upper []float64, empty bool, labels ...string) (prometheus.Metric, bool) {
	var count uint64
	buckets := make(map[float64]uint64, len(upper))
	for i, ub := range upper {
		count += h.counts[i].Load()
		buckets[ub] = count
	}
	count += h.counts[len(upper)].Load()
	if count == 0 && !empty {
		return nil, false
	}
	sum := time.Duration(h.sum.Load()).Seconds()
	m, err := prometheus.NewConstHistogram(desc, count, sum, buckets, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err), true
	}
	return m, true
}

// histograms is the collector of the duration histograms: per operation
// and result, lock wait by status, and lock hold time.
type histograms struct {
	opDesc, waitDesc, holdDesc *prometheus.Desc

	upper, lockUpper   []float64 // bucket bounds in seconds
	bounds, lockBounds []int64   // the same in nanoseconds

	ops  [obs.NumOps][2]hist // result: 0 ok, 1 error
	wait [2]hist             // status: 0 acquired, 1 failed
	hold hist
}

var _ prometheus.Collector = (*histograms)(nil)

var (
	resultNames = [2]string{"ok", "error"}
	statusNames = [2]string{"acquired", "failed"}
)

func newHistograms(ns string, upper, lockUpper []float64) (*histograms, error) {
	bounds, err := nanos(upper)
	if err != nil {
		return nil, fmt.Errorf("metrics: Buckets: %w", err)
	}
	lockBounds, err := nanos(lockUpper)
	if err != nil {
		return nil, fmt.Errorf("metrics: LockBuckets: %w", err)
	}
	h := &histograms{
		opDesc: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "operation_duration_seconds"),
			"Duration of coord operations, by operation and result (ok or error).", []string{"op", "result"}, nil),
		waitDesc: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "lock_wait_seconds"),
			"Time Acquire took, by status (acquired or failed).", []string{"status"}, nil),
		holdDesc: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "lock_hold_seconds"),
			"Time leases were held, observed at release or when found lost.", nil, nil),
		upper: upper, lockUpper: lockUpper,
		bounds: bounds, lockBounds: lockBounds,
	}
	for op := range h.ops {
		for r := range h.ops[op] {
			h.ops[op][r] = newHist(len(upper))
		}
	}
	for s := range h.wait {
		h.wait[s] = newHist(len(lockUpper))
	}
	h.hold = newHist(len(lockUpper))
	return h, nil
}

// nanos converts bucket bounds in seconds to nanoseconds, checking that
// they increase.
func nanos(upper []float64) ([]int64, error) {
	out := make([]int64, len(upper))
	for i, ub := range upper {
		if math.IsNaN(ub) || math.IsInf(ub, 0) || ub <= 0 {
			return nil, fmt.Errorf("bucket %v is not a positive finite number of seconds", ub)
		}
		if i > 0 && ub <= upper[i-1] {
			return nil, fmt.Errorf("buckets are not increasing: %v after %v", ub, upper[i-1])
		}
		out[i] = int64(ub * float64(time.Second))
	}
	return out, nil
}

func (h *histograms) op(op obs.Op, d time.Duration, failed bool) {
	r := 0
	if failed {
		r = 1
	}
	h.ops[op][r].observe(h.bounds, d)
}

func (h *histograms) lockWait(d time.Duration, failed bool) {
	s := 0
	if failed {
		s = 1
	}
	h.wait[s].observe(h.lockBounds, d)
}

func (h *histograms) lockHold(d time.Duration) { h.hold.observe(h.lockBounds, d) }

// Describe implements prometheus.Collector.
func (h *histograms) Describe(ch chan<- *prometheus.Desc) {
	ch <- h.opDesc
	ch <- h.waitDesc
	ch <- h.holdDesc
}

// Collect implements prometheus.Collector. An operation's series appear
// once it was observed; the lock series always.
func (h *histograms) Collect(ch chan<- prometheus.Metric) {
	for op := range h.ops {
		for r := range h.ops[op] {
			if m, ok := h.ops[op][r].metric(h.opDesc, h.upper, false, obs.Op(op).String(), resultNames[r]); ok {
				ch <- m
			}
		}
	}
	for s := range h.wait {
		m, _ := h.wait[s].metric(h.waitDesc, h.lockUpper, true, statusNames[s])
		ch <- m
	}
	m, _ := h.hold.metric(h.holdDesc, h.lockUpper, true)
	ch <- m
}
