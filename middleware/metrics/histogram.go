package metrics

import (
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cgn-bot/coord/middleware/internal/obs"
	"github.com/prometheus/client_golang/prometheus"
)

// histograms is the collector of the duration histograms: per operation
// and result, lock wait by status, and lock hold time; and of
// distributed_lock_acquisitions_total, which Acquire updates with its
// histograms. They are exported as constant metrics at each scrape.
//
// The observations are spread over a few shards, each guarded by its own
// mutex: one operation takes one shard's mutex once and updates all its
// histograms (an Acquire its latency and its wait, a Release its latency
// and the hold time) with plain adds, which costs two atomic instructions
// where per-histogram atomics would cost two per histogram, and concurrent
// operations mostly touch different cache lines. A scrape sums the shards.
type histograms struct {
	opDesc, waitDesc, holdDesc, acqDesc *prometheus.Desc

	upper, lockUpper   []float64 // bucket bounds in seconds
	bounds, lockBounds []int64   // the same in nanoseconds

	shards []shard
	shift  uint // 64 - log2(len(shards)), for shardOf

	// The values of the resource label, by slot: the shards count the
	// acquisitions of each value in its slot.
	labelMu sync.Mutex
	slotOf  map[string]int           // guarded by labelMu
	labels  atomic.Pointer[[]string] // appended to under labelMu
}

var _ prometheus.Collector = (*histograms)(nil)

var (
	resultNames = [2]string{"ok", "error"}
	statusNames = [2]string{"acquired", "failed"}
)

// hist is one histogram's share in a shard: counts per bucket, not
// cumulative (the last is +Inf), and the sum in nanoseconds.
type hist struct {
	counts []uint64
	sum    int64
}

// observe records d; bounds are the upper bounds of the buckets in
// nanoseconds.
func (h *hist) observe(bounds []int64, d time.Duration) {
	i := 0
	for i < len(bounds) && int64(d) > bounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += int64(d)
}

// shard is one share of the observations.
type shard struct {
	mu   sync.Mutex
	ops  [obs.NumOps][2]hist // result: 0 ok, 1 error
	wait [2]hist             // status: 0 acquired, 1 failed
	hold hist
	acq  [][2]uint64 // acquisitions by resource label slot and status

	_ [64]byte // keeps the next shard's mutex off this one's cache lines
}

func newHistograms(ns string, upper, lockUpper []float64) (*histograms, error) {
	bounds, err := nanos(upper)
	if err != nil {
		return nil, fmt.Errorf("metrics: Buckets: %w", err)
	}
	lockBounds, err := nanos(lockUpper)
	if err != nil {
		return nil, fmt.Errorf("metrics: LockBuckets: %w", err)
	}
	n := shardCount(runtime.GOMAXPROCS(0))
	h := &histograms{
		opDesc: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "operation_duration_seconds"),
			"Duration of coord operations, by operation and result (ok or error).", []string{"op", "result"}, nil),
		waitDesc: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "lock_wait_seconds"),
			"Time Acquire took, by status (acquired or failed).", []string{"status"}, nil),
		holdDesc: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "lock_hold_seconds"),
			"Time leases were held, observed at release or when found lost.", nil, nil),
		acqDesc: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "distributed_lock_acquisitions_total"),
			"Lock acquisitions, by resource and status (acquired or failed).", []string{"resource", "status"}, nil),
		upper: upper, lockUpper: lockUpper,
		bounds: bounds, lockBounds: lockBounds,
		shards: make([]shard, n),
		shift:  uint(64 - bits.TrailingZeros(uint(n))),
		slotOf: make(map[string]int),
	}
	h.labels.Store(new([]string))
	for i := range h.shards {
		h.shards[i].init(len(upper)+1, len(lockUpper)+1)
	}
	return h, nil
}

// init makes the bucket counts of s: nb per operation histogram, nl per
// lock histogram, in one array of its own.
func (s *shard) init(nb, nl int) {
	counts := make([]uint64, int(obs.NumOps)*2*nb+3*nl)
	for op := range s.ops {
		for r := range s.ops[op] {
			s.ops[op][r].counts, counts = counts[:nb:nb], counts[nb:]
		}
	}
	for st := range s.wait {
		s.wait[st].counts, counts = counts[:nl:nl], counts[nl:]
	}
	s.hold.counts = counts[:nl:nl]
}

// shardCount returns the number of shards for procs processors: a power
// of two, twice procs rounded up, between 2 and 32. With the default
// buckets a shard takes about 9 KB.
func shardCount(procs int) int {
	n := 2
	for n < 2*procs && n < 32 {
		n *= 2
	}
	return n
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

// shardOf returns the shard for key, a clock reading or a duration: its
// low bits vary from call to call, so concurrent operations spread over
// the shards, and one lease's readings always find the same shard.
func (h *histograms) shardOf(key time.Duration) *shard {
	return &h.shards[(uint64(key)*0x9e3779b97f4a7c15)>>h.shift]
}

func result(failed bool) int {
	if failed {
		return 1
	}
	return 0
}

// op records one operation that took d.
func (h *histograms) op(op obs.Op, d time.Duration, failed bool) {
	s := h.shardOf(d)
	s.mu.Lock()
	s.ops[op][result(failed)].observe(h.bounds, d)
	s.mu.Unlock()
}

// acquire records an Acquire that took d and ended at now: its latency
// (failed when it returned an error), its wait and its count in the
// resource label slot (failed when it gave no lease). now keys the shard,
// the one the lease's later records use.
func (h *histograms) acquire(now, d time.Duration, failed, noLease bool, slot int) {
	st := result(noLease)
	s := h.shardOf(now)
	s.mu.Lock()
	s.ops[obs.LockAcquire][result(failed)].observe(h.bounds, d)
	s.wait[st].observe(h.lockBounds, d)
	if slot >= len(s.acq) {
		s.acq = append(s.acq, make([][2]uint64, slot+1-len(s.acq))...)
	}
	s.acq[slot][st]++
	s.mu.Unlock()
}

// resourceSlot returns the slot of a value of the resource label, making
// one on first use; a value that is not valid UTF-8 counts as "invalid".
// A slot's series appear, at zero, once it is made.
func (h *histograms) resourceSlot(label string) int {
	if !utf8.ValidString(label) {
		label = "invalid"
	}
	h.labelMu.Lock()
	defer h.labelMu.Unlock()
	if i, ok := h.slotOf[label]; ok {
		return i
	}
	i := len(h.slotOf)
	h.slotOf[label] = i
	// Appending in place is safe: readers read only below their length.
	labels := append(*h.labels.Load(), label)
	h.labels.Store(&labels)
	return i
}

// lease records an operation on the lease l that took d and ended at now.
// When ends, the lease ended and, unless an earlier call saw it end, its
// hold time is recorded and ended reports true.
func (h *histograms) lease(l *lock, op obs.Op, now, d time.Duration, failed, ends bool) (ended bool) {
	s := h.shardOf(l.start)
	s.mu.Lock()
	s.ops[op][result(failed)].observe(h.bounds, d)
	if ends && !l.ended {
		l.ended, ended = true, true
		s.hold.observe(h.lockBounds, now-l.start)
	}
	s.mu.Unlock()
	return ended
}

// Describe implements prometheus.Collector.
func (h *histograms) Describe(ch chan<- *prometheus.Desc) {
	ch <- h.opDesc
	ch <- h.waitDesc
	ch <- h.holdDesc
	ch <- h.acqDesc
}

// Collect implements prometheus.Collector. An operation's series appear
// once it was observed; the lock series always.
func (h *histograms) Collect(ch chan<- prometheus.Metric) {
	var total shard
	total.init(len(h.upper)+1, len(h.lockUpper)+1)
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		for op := range s.ops {
			for r := range s.ops[op] {
				total.ops[op][r].add(&s.ops[op][r])
			}
		}
		for st := range s.wait {
			total.wait[st].add(&s.wait[st])
		}
		total.hold.add(&s.hold)
		for i, c := range s.acq {
			if i == len(total.acq) {
				total.acq = append(total.acq, c)
				continue
			}
			total.acq[i][0] += c[0]
			total.acq[i][1] += c[1]
		}
		s.mu.Unlock()
	}
	// Loaded after the shards: every slot they count is in it.
	labels := *h.labels.Load()

	for op := range total.ops {
		for r := range total.ops[op] {
			if m, ok := total.ops[op][r].metric(h.opDesc, h.upper, false, obs.Op(op).String(), resultNames[r]); ok {
				ch <- m
			}
		}
	}
	for st := range total.wait {
		m, _ := total.wait[st].metric(h.waitDesc, h.lockUpper, true, statusNames[st])
		ch <- m
	}
	m, _ := total.hold.metric(h.holdDesc, h.lockUpper, true)
	ch <- m
	for i, label := range labels {
		var c [2]uint64
		if i < len(total.acq) {
			c = total.acq[i]
		}
		for st := range c {
			ch <- prometheus.MustNewConstMetric(h.acqDesc, prometheus.CounterValue, float64(c[st]), label, statusNames[st])
		}
	}
}

// add adds o's observations to h's.
func (h *hist) add(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.sum += o.sum
}

// metric returns h as a constant histogram; ok is false when h has no
// observation and empty is false.
func (h *hist) metric(desc *prometheus.Desc, upper []float64, empty bool, labels ...string) (prometheus.Metric, bool) {
	var count uint64
	buckets := make(map[float64]uint64, len(upper))
	for i, ub := range upper {
		count += h.counts[i]
		buckets[ub] = count
	}
	count += h.counts[len(upper)]
	if count == 0 && !empty {
		return nil, false
	}
	sum := time.Duration(h.sum).Seconds()
	m, err := prometheus.NewConstHistogram(desc, count, sum, buckets, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err), true
	}
	return m, true
}
