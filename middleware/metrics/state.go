package metrics

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector reports, at each scrape, what the decorated values know
// themselves: the connection state of the backends, the leases of the
// lockers and the Stats counters of the invalidators and event buses.
// Nothing of it costs an operation anything.
type stateCollector struct {
	conn      *prometheus.Desc
	active    *prometheus.Desc
	dropped   *prometheus.Desc
	malformed *prometheus.Desc
	panics    *prometheus.Desc
	timeout   time.Duration

	mu           sync.Mutex
	backends     []watched // for the connection state
	lockers      []coord.Locker
	invalidators []coord.Invalidator
	buses        []coord.EventBus
	// retired holds the last Stats of the invalidators and event buses of
	// closed backends, so that the counters never go down once those are
	// dropped.
	retiredInv coord.InvalidatorStats
	retiredEv  coord.EventStats
}

var _ prometheus.Collector = (*stateCollector)(nil)

func newStateCollector(ns string, timeout time.Duration) *stateCollector {
	kind := []string{"kind"}
	return &stateCollector{
		conn: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "redis_connection_state"),
			"Connection state of the backend: 0 disconnected, 1 connected, 2 reconnecting.", nil, nil),
		active: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "distributed_locks_active"),
			"Leases this instance holds.", nil, nil),
		dropped: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "subscriber_dropped_total"),
			"Deliveries lost to a full subscriber queue, by kind (invalidation or event).", kind, nil),
		malformed: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "subscriber_malformed_total"),
			"Received messages that failed to decode and were dropped, by kind.", kind, nil),
		panics: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "subscriber_panics_total"),
			"Subscriber handler panics recovered, by kind.", kind, nil),
		timeout: timeout,
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.conn
	ch <- c.active
	ch <- c.dropped
	ch <- c.malformed
	ch <- c.panics
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	backends := slices.Clone(c.backends)
	lockers := slices.Clone(c.lockers)
	invalidators := slices.Clone(c.invalidators)
	buses := slices.Clone(c.buses)
	retiredInv, retiredEv := c.retiredInv, c.retiredEv
	c.mu.Unlock()

	if len(backends) > 0 {
		worst := coord.Connected
		for _, w := range backends {
			if s := c.connState(w.state); rank(s) < rank(worst) {
				worst = s
			}
		}
		ch <- prometheus.MustNewConstMetric(c.conn, prometheus.GaugeValue, gauge(worst))
	}

	active := 0
	for _, l := range lockers {
		active += len(l.Held())
	}
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(active))

	if len(invalidators) > 0 || retiredInv != (coord.InvalidatorStats{}) {
		dropped, malformed, panics := retiredInv.Dropped, retiredInv.Malformed, retiredInv.Panics
		for _, inv := range invalidators {
			s := inv.Stats()
			dropped += s.Dropped
			malformed += s.Malformed
			panics += s.Panics
		}
		c.counters(ch, "invalidation", dropped, malformed, panics)
	}
	if len(buses) > 0 || retiredEv != (coord.EventStats{}) {
		dropped, malformed, panics := retiredEv.Dropped, retiredEv.Malformed, retiredEv.Panics
		for _, bus := range buses {
			s := bus.Stats()
			dropped += s.Dropped
			malformed += s.Malformed
			panics += s.Panics
		}
		c.counters(ch, "event", dropped, malformed, panics)
	}
}

func (c *stateCollector) counters(ch chan<- prometheus.Metric, kind string, dropped, malformed, panics uint64) {
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(dropped), kind)
	ch <- prometheus.MustNewConstMetric(c.malformed, prometheus.CounterValue, float64(malformed), kind)
	ch <- prometheus.MustNewConstMetric(c.panics, prometheus.CounterValue, float64(panics), kind)
}

// watched is a backend whose connection state is exported.
type watched struct {
	// key is the innermost backend, so that one backend decorated twice
	// is counted once.
	key coord.Backend
	// state is where its state is read: the outermost
	// [driver.StateReporter] on its Unwrap chain (a wrapper such as a
	// fallback to memory reports the state of the backend it stands in
	// for), else key.
	state coord.Backend
}

// watch returns what addBackend keeps of b.
func watch(b coord.Backend) watched {
	w := watched{key: innermost(b)}
	for x := b; x != nil; {
		if _, ok := x.(driver.StateReporter); ok {
			w.state = x
			return w
		}
		u, ok := x.(interface{ Unwrap() coord.Backend })
		if !ok {
			break
		}
		x = u.Unwrap()
	}
	w.state = w.key
	return w
}

// connState returns b's connection state: from State if b is a
// [driver.StateReporter], else from Health within the timeout.
func (c *stateCollector) connState(b coord.Backend) coord.ConnState {
	if s, ok := b.(driver.StateReporter); ok {
		return s.State()
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return b.Health(ctx).Connection
}

// gauge returns the value of the redis_connection_state metric for s:
// 0 disconnected, 1 connected, 2 reconnecting.
func gauge(s coord.ConnState) float64 {
	switch s {
	case coord.Connected:
		return 1
	case coord.Reconnecting:
		return 2
	}
	return 0
}

// rank orders connection states from worst to best.
func rank(s coord.ConnState) int {
	switch s {
	case coord.Connected:
		return 2
	case coord.Reconnecting:
		return 1
	}
	return 0
}

func (c *stateCollector) addBackend(b coord.Backend) {
	w := watch(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.ContainsFunc(c.backends, func(x watched) bool { return same(x.key, w.key) }) {
		c.backends = append(c.backends, w)
	}
}

// retireBackend stops watching a closed backend and its parts: its
// connection state and leases are no longer exported, and the last Stats
// of its invalidator and event bus are kept in the retired totals.
func (c *stateCollector) retireBackend(b coord.Backend, l coord.Locker, inv coord.Invalidator, bus coord.EventBus) {
	b, l, inv, bus = innermost(b), unwrapAll(l), unwrapAll(inv), unwrapAll(bus)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.backends = slices.DeleteFunc(c.backends, func(x watched) bool { return same(x.key, b) })
	c.lockers = slices.DeleteFunc(c.lockers, func(x coord.Locker) bool { return same(x, l) })
	n := len(c.invalidators)
	c.invalidators = slices.DeleteFunc(c.invalidators, func(x coord.Invalidator) bool { return same(x, inv) })
	if len(c.invalidators) < n { // inv is not nil
		st := inv.Stats()
		c.retiredInv.Dropped += st.Dropped
		c.retiredInv.Malformed += st.Malformed
		c.retiredInv.Panics += st.Panics
	}
	n = len(c.buses)
	c.buses = slices.DeleteFunc(c.buses, func(x coord.EventBus) bool { return same(x, bus) })
	if len(c.buses) < n {
		st := bus.Stats()
		c.retiredEv.Dropped += st.Dropped
		c.retiredEv.Malformed += st.Malformed
		c.retiredEv.Panics += st.Panics
	}
}

func (c *stateCollector) addLocker(l coord.Locker) {
	l = unwrapAll(l)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lockers = add(c.lockers, l)
}

func (c *stateCollector) addInvalidator(inv coord.Invalidator) {
	inv = unwrapAll(inv)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.invalidators = add(c.invalidators, inv)
}

func (c *stateCollector) addBus(bus coord.EventBus) {
	bus = unwrapAll(bus)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buses = add(c.buses, bus)
}

// innermost follows the Unwrap methods of backend decorators.
func innermost(b coord.Backend) coord.Backend {
	return unwrapAll(b)
}

// unwrapAll follows Unwrap() T as far as it goes, so that one value
// decorated twice is counted once.
func unwrapAll[T any](v T) T {
	for range 64 {
		u, ok := any(v).(interface{ Unwrap() T })
		if !ok {
			return v
		}
		w := u.Unwrap()
		if any(w) == nil {
			return v
		}
		v = w
	}
	return v
}

// add appends v to s unless s holds it already.
func add[T any](s []T, v T) []T {
	for _, x := range s {
		if same(x, v) {
			return s
		}
	}
	return append(s, v)
}

// same reports whether a and b are the same value, without panicking on
// values of a type that cannot be compared.
func same(a, b any) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	if ta != tb || ta == nil || !ta.Comparable() {
		return false
	}
	return a == b
}
