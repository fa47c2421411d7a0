package metrics

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cgn-bot/coord/middleware/internal/obs"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultNamespace is the namespace of the metric names when
// [Options.Namespace] is empty.
const DefaultNamespace = "coord"

// DefaultChannelPrefix starts the channel label values of a backend that
// does not name its channels when [Options.ChannelPrefix] is empty: the
// Redis backend's default key prefix.
const DefaultChannelPrefix = "cgn:"

// AllLabel is the label value every resource and every event topic maps
// to unless [Options.ResourceLabel] or [Options.EventLabel] says otherwise.
const AllLabel = "all"

// DefaultBuckets returns the default buckets of the per-operation latency
// histogram, in seconds: 100µs to 5s, for memory and Redis alike.
func DefaultBuckets() []float64 {
	return []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
}

// DefaultLockBuckets returns the default buckets of the lock wait and hold
// time histograms, in seconds: 1ms to an hour.
func DefaultLockBuckets() []float64 {
	return []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600}
}

// maxCachedLabels bounds the label values a mapping may produce that get
// a cached metric child; beyond it each call looks its child up again.
const maxCachedLabels = 256

// Options configure a [Middleware]. A nil *Options means the defaults,
// and so does each zero field.
type Options struct {
	// Namespace starts every metric name. With "skynetbot" the six series
	// shared with the Node fleet (docs/METRICS.md) have exactly its names
	// and label names.
	// Default: [DefaultNamespace].
	Namespace string

	// ChannelPrefix starts the values of the channel label of
	// distributed_cache_messages_received_total for a backend that does
	// not name its pub/sub channels (the memory backend): ChannelPrefix
	// followed by "cache:invalidate", "cache:invalidate:pattern" or
	// "shard:event". A backend that names them (the Redis backend, through
	// a Channels() (invalidate, pattern, event string) method of its
	// Invalidator and EventBus) is labelled with its own names, which
	// carry its prefix, whatever this says. Default: [DefaultChannelPrefix].
	ChannelPrefix string

	// ResourceLabel maps a lock's resource name to the value of the
	// resource label of distributed_lock_acquisitions_total. Resource
	// names are user data: the mapping must return values from a small
	// set (see [Allow]). Default: every resource maps to [AllLabel].
	ResourceLabel func(resource string) string

	// EventLabel maps an event topic to the value of the event label of
	// distributed_shard_events_sent_total. It must return values from a
	// small set (see [Allow]). Default: every topic maps to [AllLabel].
	EventLabel func(topic string) string

	// Buckets are the buckets of operation_duration_seconds.
	// Default: [DefaultBuckets].
	Buckets []float64

	// LockBuckets are the buckets of lock_wait_seconds and
	// lock_hold_seconds. Default: [DefaultLockBuckets].
	LockBuckets []float64

	// HealthTimeout bounds the Health call that reads the connection
	// state at each scrape, for a backend that does not report its state
	// directly. Default: 1s.
	HealthTimeout time.Duration
}

// Allow returns a label mapping for [Options.ResourceLabel] or
// [Options.EventLabel] that keeps the given names as they are and maps
// every other name to "other", so the label has at most len(names)+1
// values.
func Allow(names ...string) func(string) string {
	set := make(map[string]struct{}, len(names))
	for _, n := range names {
		set[n] = struct{}{}
	}
	return func(s string) string {
		if _, ok := set[s]; ok {
			return s
		}
		return "other"
	}
}

// Middleware holds the metrics of one registry and makes the decorators
// that record them. Its methods Backend, Locker, Sessions, Invalidator,
// Events and RateLimiter are decorators of the form func(next coord.Locker) coord.Locker.
// Several decorated backends may share one Middleware; their series add
// up. A nil *Middleware is valid: its decorators return next unchanged.
// A Middleware is safe for concurrent use by multiple goroutines.
type Middleware struct {
	clock obs.Clock

	received    *prometheus.CounterVec // by channel name
	channelPfx  string                 // Options.ChannelPrefix
	sentSingle  prometheus.Counter
	sentPattern prometheus.Counter
	events      labelCache[prometheus.Counter]
	streams     *streamMetrics
	acquire     labelCache[int] // slots of the resource label (see histograms)

	hist     *histograms
	errs     *prometheus.CounterVec
	errCount [obs.NumOps][obs.NumKinds]lazy[prometheus.Counter]

	leasesLost prometheus.Counter
	purges     [numReasons]prometheus.Counter

	state  *stateCollector
	caches *cacheCollector // near caches, see Middleware.Cache
	jobs   *jobMetrics     // see jobs.go
	rates  *rateDecisions  // see Middleware.RateLimiter
	leases *leaseMetrics   // read and write leases, permits, leaderships
}

// Channels, the values of the channel label.
const (
	chanKey = iota
	chanPattern
	chanEvent
	numChannels
)

// Purge reasons, the values of the reason label of near_cache_purges_total.
const (
	reasonReconnect = iota
	reasonOverflow
	reasonMalformed
	reasonOther
	numReasons
)

var reasonNames = [numReasons]string{"reconnect", "overflow", "malformed", "other"}

func reasonOf(s string) int {
	switch s {
	case "reconnect":
		return reasonReconnect
	case "overflow":
		return reasonOverflow
	case "malformed":
		return reasonMalformed
	}
	return reasonOther
}

// New registers the metrics with reg and returns a Middleware that records
// them. A nil reg gives a nil *Middleware, whose decorators change
// nothing. A metric that reg already holds from another Middleware with
// the same namespace is shared, not an error (the first registration's
// buckets win). A namespace that is not a classic Prometheus name, and
// registration errors such as a same-named metric of another shape, are
// returned; what New registered before the error is unregistered.
//
// The metrics, after the namespace and an underscore:
//
//   - distributed_cache_messages_received_total{channel}: counter of
//     invalidations and events delivered to subscribers, by pub/sub
//     channel name.
//   - distributed_cache_invalidations_sent_total{type}: counter of
//     invalidations sent, type "single" or "pattern".
//   - distributed_shard_events_sent_total{event}: counter of events
//     published, event from [Options.EventLabel].
//   - redis_connection_state: gauge, 0 disconnected, 1 connected,
//     2 reconnecting (from [coord.ConnState]); the worst state of the
//     decorated backends, absent until a Backend is decorated.
//   - distributed_locks_active: gauge of the leases the decorated lockers
//     hold (their Held), read at each scrape.
//   - distributed_lock_acquisitions_total{resource,status}: counter of
//     Acquire calls, status "acquired" or "failed", resource from
//     [Options.ResourceLabel].
//   - operation_duration_seconds{op,result}: histogram of every operation,
//     result "ok" or "error".
//   - operation_errors_total{op,kind}: counter of failed operations by
//     kind (see [github.com/cgn-bot/coord/middleware.ErrorKind]).
//   - lock_wait_seconds{status}: histogram of the time Acquire took.
//   - lock_hold_seconds: histogram of how long leases were held, observed
//     when one is released or found lost.
//   - lock_leases_lost_total: counter of leases lost before their release,
//     found when Release, Extend or TTL reports [coord.ErrNotHeld] or
//     [coord.ErrExpired] ([coord.WithLock] always calls Release).
//   - near_cache_purges_total{reason}: counter of purge-all signals
//     delivered to invalidation subscribers, reason "reconnect",
//     "overflow", "malformed" or "other".
//   - subscriber_dropped_total{kind}, subscriber_malformed_total{kind},
//     subscriber_panics_total{kind}: the Stats counters of the decorated
//     invalidators (kind "invalidation") and event buses (kind "event"),
//     read at each scrape.
//   - cache_*{cache}: the Stats of the near caches recorded with
//     [Middleware.Cache], read at each scrape.
//   - rate_limit_decisions_total{limit,decision}: counter of rate limit
//     decisions, decision "allowed" or "denied", limit the
//     [coord.Limit.Label] (at most [MaxRateLimitLabels] names, then
//     "other").
func New(reg prometheus.Registerer, opts *Options) (*Middleware, error) {
	if reg == nil {
		return nil, nil
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.ChannelPrefix == "" {
		o.ChannelPrefix = DefaultChannelPrefix
	}
	if o.Buckets == nil {
		o.Buckets = DefaultBuckets()
	}
	if o.LockBuckets == nil {
		o.LockBuckets = DefaultLockBuckets()
	}
	if o.HealthTimeout <= 0 {
		o.HealthTimeout = time.Second
	}
	if !validNamespace(o.Namespace) {
		return nil, fmt.Errorf("metrics: namespace %q is not a classic Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*)", o.Namespace)
	}
	ns := o.Namespace
	r := registrar{reg: reg}

	received := register(&r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "distributed_cache_messages_received_total",
		Help: "Invalidations and events delivered to subscribers, by pub/sub channel.",
	}, []string{"channel"}))
	sent := register(&r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "distributed_cache_invalidations_sent_total",
		Help: "Cache invalidations sent, by type (single or pattern).",
	}, []string{"type"}))
	events := register(&r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "distributed_shard_events_sent_total",
		Help: "Events published, by event.",
	}, []string{"event"}))
	errs := register(&r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "operation_errors_total",
		Help: "Failed coord operations, by operation and error kind.",
	}, []string{"op", "kind"}))
	hist, err := newHistograms(ns, o.Buckets, o.LockBuckets)
	if err != nil {
		return nil, err
	}
	hist = register(&r, hist)
	leasesLost := register(&r, prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Name: "lock_leases_lost_total",
		Help: "Leases lost before their holder released them.",
	}))
	purges := register(&r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "near_cache_purges_total",
		Help: "Purge-all signals delivered to invalidation subscribers, by reason.",
	}, []string{"reason"}))
	state := register(&r, newStateCollector(ns, o.HealthTimeout))
	caches := register(&r, newCacheCollector(ns))
	jobs := register(&r, newJobMetrics(ns, o.ResourceLabel))
	rates := register(&r, newRateDecisionsVec(ns))
	leases := newLeaseMetrics(&r, ns, o.LockBuckets)
	streams := newStreamMetrics(&r, ns, o.EventLabel)
	if r.err != nil {
		r.undo()
		return nil, r.err
	}

	m := &Middleware{
		clock:       obs.NewClock(),
		sentSingle:  sent.WithLabelValues("single"),
		sentPattern: sent.WithLabelValues("pattern"),
		hist:        hist,
		errs:        errs,
		leasesLost:  leasesLost,
		state:       state,
		caches:      caches,
		jobs:        jobs,
		rates:       newRateDecisions(rates),
		leases:      leases,
		streams:     streams,
	}
	m.received, m.channelPfx = received, o.ChannelPrefix
	for i := range m.purges {
		m.purges[i] = purges.WithLabelValues(reasonNames[i])
	}
	m.events.init(o.EventLabel, func(label string) prometheus.Counter {
		c, err := events.GetMetricWithLabelValues(label)
		if err != nil {
			c = events.WithLabelValues("invalid")
		}
		return c
	})
	m.acquire.init(o.ResourceLabel, hist.resourceSlot)
	return m, nil
}

// validNamespace reports whether ns may start a classic Prometheus metric
// name, which every tool accepts.
func validNamespace(ns string) bool {
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return ns != ""
}

// registrar registers collectors and keeps the first error.
type registrar struct {
	reg   prometheus.Registerer
	err   error
	added []prometheus.Collector // registered here, not found registered
}

// undo unregisters what r registered, after a failure.
func (r *registrar) undo() {
	for _, c := range r.added {
		r.reg.Unregister(c)
	}
}

// register registers c, or returns the collector reg already holds with
// the same descriptors.
func register[T prometheus.Collector](r *registrar, c T) T {
	if r.err != nil {
		return c
	}
	err := r.reg.Register(c)
	if err == nil {
		r.added = append(r.added, c)
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing
		}
	}
	r.err = fmt.Errorf("metrics: register: %w", err)
	return c
}

// observe records one operation that took d and ended with err.
func (m *Middleware) observe(op obs.Op, d time.Duration, err error) {
	m.hist.op(op, d, err != nil)
	if err != nil {
		m.errorsOf(op, obs.KindOf(err)).Inc()
	}
}

// done records an operation that started at start (a reading of m.clock)
// and ended with *err. It is meant for defer.
func (m *Middleware) done(op obs.Op, start time.Duration, err *error) {
	m.observe(op, m.clock.Now()-start, *err)
}

func (m *Middleware) errorsOf(op obs.Op, kind obs.Kind) prometheus.Counter {
	return m.errCount[op][kind].get(func() prometheus.Counter {
		return m.errs.WithLabelValues(op.String(), kind.String())
	})
}

// lazy holds a metric child made on first use.
type lazy[T any] struct {
	p atomic.Pointer[T]
}

func (l *lazy[T]) get(mk func() T) T {
	if p := l.p.Load(); p != nil {
		return *p
	}
	v := mk()
	l.p.Store(&v) // A racing maker made the same child.
	return v
}

// labelCache maps a user name (a resource, a topic) through a user mapping
// to a label value and caches the metric children of each value.
type labelCache[T any] struct {
	mapping func(string) string // nil: every name maps to AllLabel
	mk      func(label string) T
	all     T // the children of AllLabel when mapping is nil

	mu sync.Mutex                   // serialises writers of m
	m  atomic.Pointer[map[string]T] // copied on write, read without locks
}

func (c *labelCache[T]) init(mapping func(string) string, mk func(string) T) {
	c.mapping, c.mk = mapping, mk
	if mapping == nil {
		c.all = mk(AllLabel)
	}
}

func (c *labelCache[T]) get(name string) T {
	if c.mapping == nil {
		return c.all
	}
	label := c.mapping(name)
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[label]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[label]; ok {
			return v
		}
		if len(*old) >= maxCachedLabels {
			return c.mk(label)
		}
	}
	v := c.mk(label)
	next := make(map[string]T, 1+lenOf(old))
	if old != nil {
		for k, x := range *old {
			next[k] = x
		}
	}
	next[label] = v
	c.m.Store(&next)
	return v
}

func lenOf[T any](m *map[string]T) int {
	if m == nil {
		return 0
	}
	return len(*m)
}
