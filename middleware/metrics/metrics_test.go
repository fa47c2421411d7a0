package metrics_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/coordmock"
	"github.com/cgn-bot/coord/middleware/logging"
	"github.com/cgn-bot/coord/middleware/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/cgn-bot/coord/internal/coordtest"
	"go.uber.org/mock/gomock"
)

func TestMain(m *testing.M) {
	coordtest.DefaultParallel(coordtest.SuiteParallel)
	goleak.VerifyTestMain(m)
}

// fake is a backend of mocks whose lockers' Held, connection state and
// Stats the test sets.
type fake struct {
	*coordmock.MockBackend
	locker   *coordmock.MockLocker
	sessions *coordmock.MockSessionStore
	inv      *coordmock.MockInvalidator
	bus      *coordmock.MockEventBus

	mu       sync.Mutex
	held     []coord.Lock
	state    coord.ConnState
	invStats coord.InvalidatorStats
	evStats  coord.EventStats
}

// State is the optional method the connection gauge looks for.
func (f *fake) State() coord.ConnState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

func (f *fake) set(fn func(f *fake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func newFake(t *testing.T) *fake {
	ctrl := gomock.NewController(t)
	f := &fake{
		MockBackend: coordmock.NewMockBackend(ctrl),
		locker:      coordmock.NewMockLocker(ctrl),
		sessions:    coordmock.NewMockSessionStore(ctrl),
		inv:         coordmock.NewMockInvalidator(ctrl),
		bus:         coordmock.NewMockEventBus(ctrl),
		state:       coord.Connected,
	}
	f.EXPECT().Locker().Return(f.locker).AnyTimes()
	f.EXPECT().Sessions().Return(f.sessions).AnyTimes()
	f.EXPECT().Invalidator().Return(f.inv).AnyTimes()
	f.EXPECT().Events().Return(f.bus).AnyTimes()
	f.locker.EXPECT().Held().DoAndReturn(func() []coord.Lock {
		f.mu.Lock()
		defer f.mu.Unlock()
		return slices.Clone(f.held)
	}).AnyTimes()
	f.inv.EXPECT().Stats().DoAndReturn(func() coord.InvalidatorStats {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.invStats
	}).AnyTimes()
	f.bus.EXPECT().Stats().DoAndReturn(func() coord.EventStats {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.evStats
	}).AnyTimes()
	return f
}

// newLock returns a mock lease on resource whose Done channel the test
// closes to simulate a loss.
func newLock(t *testing.T, resource string) (*coordmock.MockLock, chan struct{}) {
	lk := coordmock.NewMockLock(gomock.NewController(t))
	done := make(chan struct{})
	lk.EXPECT().Done().Return(done).AnyTimes()
	lk.EXPECT().Resource().Return(resource).AnyTimes()
	return lk, done
}

func newMiddleware(t *testing.T, opts *metrics.Options) (*metrics.Middleware, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m, reg
}

// value returns the value of the series name{labels} in reg (a counter,
// a gauge, or a histogram's sample count) and whether it exists.
func value(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(want) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
					continue metrics
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func expect(t *testing.T, reg prometheus.Gatherer, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := value(t, reg, name, labels...)
	if !ok {
		t.Errorf("%s%v: no such series", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v; want %v", name, labels, got, want)
	}
}

// TestNodeSeries checks that with namespace skynetbot the registry holds
// the Node design's six series with its names, types and label names.
func TestNodeSeries(t *testing.T) {
	m, reg := newMiddleware(t, &metrics.Options{Namespace: "skynetbot"})
	m.Backend(newFake(t))

	want := map[string]struct {
		typ    dto.MetricType
		labels []string
	}{
		"skynetbot_distributed_cache_messages_received_total":  {dto.MetricType_COUNTER, []string{"channel"}},
		"skynetbot_distributed_cache_invalidations_sent_total": {dto.MetricType_COUNTER, []string{"type"}},
		"skynetbot_distributed_shard_events_sent_total":        {dto.MetricType_COUNTER, []string{"event"}},
		"skynetbot_redis_connection_state":                     {dto.MetricType_GAUGE, nil},
		"skynetbot_distributed_locks_active":                   {dto.MetricType_GAUGE, nil},
		"skynetbot_distributed_lock_acquisitions_total":        {dto.MetricType_COUNTER, []string{"resource", "status"}},
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	found := map[string]bool{}
	for _, mf := range mfs {
		w, ok := want[mf.GetName()]
		if !ok {
			continue
		}
		found[mf.GetName()] = true
		if mf.GetType() != w.typ {
			t.Errorf("%s: type %v; want %v", mf.GetName(), mf.GetType(), w.typ)
		}
		for _, m := range mf.GetMetric() {
			var names []string
			for _, lp := range m.GetLabel() {
				names = append(names, lp.GetName())
			}
			slices.Sort(names)
			if !slices.Equal(names, w.labels) {
				t.Errorf("%s: label names %v; want %v", mf.GetName(), names, w.labels)
			}
		}
	}
	for name := range want {
		if !found[name] {
			t.Errorf("registry has no %s", name)
		}
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "skynetbot_") {
			t.Errorf("%s: not in namespace skynetbot", mf.GetName())
		}
	}

	// The exposition, byte for byte, of the series whose values are known.
	const exposition = `
# HELP skynetbot_distributed_cache_invalidations_sent_total Cache invalidations sent, by type (single or pattern).
# TYPE skynetbot_distributed_cache_invalidations_sent_total counter
skynetbot_distributed_cache_invalidations_sent_total{type="pattern"} 0
skynetbot_distributed_cache_invalidations_sent_total{type="single"} 0
# HELP skynetbot_distributed_cache_messages_received_total Invalidations and events delivered to subscribers, by pub/sub channel.
# TYPE skynetbot_distributed_cache_messages_received_total counter
skynetbot_distributed_cache_messages_received_total{channel="cgn:cache:invalidate"} 0
skynetbot_distributed_cache_messages_received_total{channel="cgn:cache:invalidate:pattern"} 0
skynetbot_distributed_cache_messages_received_total{channel="cgn:shard:event"} 0
# HELP skynetbot_distributed_lock_acquisitions_total Lock acquisitions, by resource and status (acquired or failed).
# TYPE skynetbot_distributed_lock_acquisitions_total counter
skynetbot_distributed_lock_acquisitions_total{resource="all",status="acquired"} 0
skynetbot_distributed_lock_acquisitions_total{resource="all",status="failed"} 0
# HELP skynetbot_distributed_locks_active Leases this instance holds.
# TYPE skynetbot_distributed_locks_active gauge
skynetbot_distributed_locks_active 0
# HELP skynetbot_distributed_shard_events_sent_total Events published, by event.
# TYPE skynetbot_distributed_shard_events_sent_total counter
skynetbot_distributed_shard_events_sent_total{event="all"} 0
# HELP skynetbot_redis_connection_state Connection state of the backend: 0 disconnected, 1 connected, 2 reconnecting.
# TYPE skynetbot_redis_connection_state gauge
skynetbot_redis_connection_state 1
`
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(exposition), names...); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestDefaultNamespace(t *testing.T) {
	m, reg := newMiddleware(t, nil)
	m.Backend(newFake(t))
	expect(t, reg, 0, "coord_distributed_locks_active")
	expect(t, reg, 1, "coord_redis_connection_state")
}

func TestLockAcquisitions(t *testing.T) {
	m, reg := newMiddleware(t, &metrics.Options{Namespace: "skynetbot"})
	f := newFake(t)
	b := m.Backend(f)
	ctx := t.Context()

	lk, _ := newLock(t, "job")
	lk.EXPECT().Release(gomock.Any()).Return(nil)
	f.locker.EXPECT().Acquire(gomock.Any(), "job", gomock.Any()).Return(lk, nil)
	f.locker.EXPECT().Acquire(gomock.Any(), "job", gomock.Any()).Return(nil, coord.ErrNotAcquired)

	got, err := b.Locker().Acquire(ctx, "job")
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	f.set(func(f *fake) { f.held = []coord.Lock{lk} })
	expect(t, reg, 1, "skynetbot_distributed_lock_acquisitions_total", "resource", "all", "status", "acquired")
	expect(t, reg, 1, "skynetbot_distributed_locks_active")

	if _, err := b.Locker().Acquire(ctx, "job"); !errors.Is(err, coord.ErrNotAcquired) {
		t.Fatalf("second Acquire = %v; want ErrNotAcquired", err)
	}
	expect(t, reg, 1, "skynetbot_distributed_lock_acquisitions_total", "resource", "all", "status", "failed")
	expect(t, reg, 1, "skynetbot_operation_errors_total", "op", "lock_acquire", "kind", "not_acquired")
	expect(t, reg, 1, "skynetbot_operation_duration_seconds", "op", "lock_acquire", "result", "ok")
	expect(t, reg, 1, "skynetbot_operation_duration_seconds", "op", "lock_acquire", "result", "error")
	expect(t, reg, 1, "skynetbot_lock_wait_seconds", "status", "acquired")
	expect(t, reg, 1, "skynetbot_lock_wait_seconds", "status", "failed")

	if err := got.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	f.set(func(f *fake) { f.held = nil })
	expect(t, reg, 0, "skynetbot_distributed_locks_active")
	expect(t, reg, 1, "skynetbot_lock_hold_seconds")
	expect(t, reg, 0, "skynetbot_lock_leases_lost_total")
	expect(t, reg, 1, "skynetbot_operation_duration_seconds", "op", "lock_release", "result", "ok")
}

func TestResourceLabel(t *testing.T) {
	m, reg := newMiddleware(t, &metrics.Options{ResourceLabel: metrics.Allow("report")})
	f := newFake(t)
	l := m.Locker(f.locker)
	for _, res := range []string{"report", "user:1", "user:2"} {
		f.locker.EXPECT().Acquire(gomock.Any(), res, gomock.Any()).Return(nil, coord.ErrNotAcquired)
		_, _ = l.Acquire(t.Context(), res)
	}
	expect(t, reg, 1, "coord_distributed_lock_acquisitions_total", "resource", "report", "status", "failed")
	expect(t, reg, 2, "coord_distributed_lock_acquisitions_total", "resource", "other", "status", "failed")
	if _, ok := value(t, reg, "coord_distributed_lock_acquisitions_total", "resource", "user:1", "status", "failed"); ok {
		t.Error("a resource name became a label value")
	}
}

func TestLostLease(t *testing.T) {
	m, reg := newMiddleware(t, nil)
	f := newFake(t)
	l := m.Locker(f.locker)
	ctx := t.Context()

	// Lost while held: Done closes, the backend drops it from Held, and
	// the holder's Release reports it expired.
	lk, done := newLock(t, "a")
	f.locker.EXPECT().Acquire(gomock.Any(), "a", gomock.Any()).Return(lk, nil)
	lk.EXPECT().Release(gomock.Any()).Return(coord.ErrExpired)
	a, err := l.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	f.set(func(f *fake) { f.held = []coord.Lock{lk} })
	expect(t, reg, 1, "coord_distributed_locks_active")
	close(done)
	f.set(func(f *fake) { f.held = nil })
	expect(t, reg, 0, "coord_distributed_locks_active")
	if err := a.Release(ctx); !errors.Is(err, coord.ErrExpired) {
		t.Fatalf("Release = %v; want ErrExpired", err)
	}
	expect(t, reg, 1, "coord_lock_leases_lost_total")
	expect(t, reg, 1, "coord_lock_hold_seconds")
	expect(t, reg, 1, "coord_operation_errors_total", "op", "lock_release", "kind", "expired")

	// Lost, found by Extend; a later Release counts nothing more.
	lk2, _ := newLock(t, "b")
	f.locker.EXPECT().Acquire(gomock.Any(), "b", gomock.Any()).Return(lk2, nil)
	lk2.EXPECT().Extend(gomock.Any(), gomock.Any()).Return(coord.ErrNotHeld)
	lk2.EXPECT().Release(gomock.Any()).Return(coord.ErrNotHeld)
	b, err := l.Acquire(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Extend(ctx, coord.DefaultLockTTL); !errors.Is(err, coord.ErrNotHeld) {
		t.Fatalf("Extend = %v; want ErrNotHeld", err)
	}
	_ = b.Release(ctx)
	expect(t, reg, 2, "coord_lock_leases_lost_total")
	expect(t, reg, 2, "coord_lock_hold_seconds")
	expect(t, reg, 1, "coord_operation_errors_total", "op", "lock_extend", "kind", "not_held")
}

// A Release that fails (Redis unreachable) still ends the lease: the
// backend gives it up, so its hold time is observed then, once, and it is
// not counted lost.
func TestFailedReleaseEndsHold(t *testing.T) {
	m, reg := newMiddleware(t, nil)
	f := newFake(t)
	l := m.Locker(f.locker)
	ctx := t.Context()

	lk, _ := newLock(t, "a")
	f.locker.EXPECT().Acquire(gomock.Any(), "a", gomock.Any()).Return(lk, nil)
	lk.EXPECT().Release(gomock.Any()).Return(coord.ErrUnavailable).Times(2)
	a, err := l.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx); !errors.Is(err, coord.ErrUnavailable) {
		t.Fatalf("Release = %v; want ErrUnavailable", err)
	}
	expect(t, reg, 1, "coord_lock_hold_seconds")
	_ = a.Release(ctx)
	expect(t, reg, 1, "coord_lock_hold_seconds")
	expect(t, reg, 0, "coord_lock_leases_lost_total")
	expect(t, reg, 2, "coord_operation_errors_total", "op", "lock_release", "kind", "unavailable")
}

func TestInvalidations(t *testing.T) {
	m, reg := newMiddleware(t, &metrics.Options{Namespace: "skynetbot", ChannelPrefix: "app:"})
	f := newFake(t)
	inv := m.Invalidator(f.inv)
	ctx := t.Context()

	f.inv.EXPECT().Invalidate(gomock.Any(), "k", gomock.Any()).Return(nil).Times(2)
	f.inv.EXPECT().Invalidate(gomock.Any(), "", gomock.Any()).Return(coord.ErrInvalid)
	f.inv.EXPECT().InvalidatePattern(gomock.Any(), "user:*", gomock.Any()).Return(nil)
	_ = inv.Invalidate(ctx, "k", nil)
	_ = inv.Invalidate(ctx, "k", nil)
	_ = inv.Invalidate(ctx, "", nil)
	_ = inv.InvalidatePattern(ctx, "user:*", nil)
	expect(t, reg, 2, "skynetbot_distributed_cache_invalidations_sent_total", "type", "single")
	expect(t, reg, 1, "skynetbot_distributed_cache_invalidations_sent_total", "type", "pattern")
	expect(t, reg, 1, "skynetbot_operation_errors_total", "op", "invalidate", "kind", "invalid")

	var handler func(coord.Invalidation)
	sub := coordmock.NewMockSubscription(gomock.NewController(t))
	f.inv.EXPECT().Subscribe(gomock.Any(), gomock.Any()).DoAndReturn(
		func(_ context.Context, fn func(coord.Invalidation), _ ...coord.SubscribeOption) (coord.Subscription, error) {
			handler = fn
			return sub, nil
		})
	var delivered []coord.InvalidationKind
	if _, err := inv.Subscribe(ctx, func(i coord.Invalidation) { delivered = append(delivered, i.Kind) }); err != nil {
		t.Fatal(err)
	}
	handler(coord.Invalidation{Kind: coord.KeyInvalidation, Key: "k"})
	handler(coord.Invalidation{Kind: coord.KeyInvalidation, Key: "k2"})
	handler(coord.Invalidation{Kind: coord.PatternInvalidation, Key: "k*"})
	handler(coord.Invalidation{Kind: coord.PurgeAll, Reason: "overflow"})
	handler(coord.Invalidation{Kind: coord.PurgeAll, Reason: "reconnect"})
	handler(coord.Invalidation{Kind: coord.PurgeAll, Reason: coord.ReasonMalformed})
	handler(coord.Invalidation{Kind: coord.PurgeAll, Reason: "something new"})
	if len(delivered) != 7 {
		t.Errorf("the handler got %d invalidations; want 7", len(delivered))
	}
	expect(t, reg, 2, "skynetbot_distributed_cache_messages_received_total", "channel", "app:cache:invalidate")
	expect(t, reg, 1, "skynetbot_distributed_cache_messages_received_total", "channel", "app:cache:invalidate:pattern")
	expect(t, reg, 1, "skynetbot_near_cache_purges_total", "reason", "overflow")
	expect(t, reg, 1, "skynetbot_near_cache_purges_total", "reason", "reconnect")
	expect(t, reg, 1, "skynetbot_near_cache_purges_total", "reason", "malformed")
	expect(t, reg, 1, "skynetbot_near_cache_purges_total", "reason", "other")

	f.set(func(f *fake) { f.invStats = coord.InvalidatorStats{Dropped: 7, Malformed: 2, Panics: 1} })
	expect(t, reg, 7, "skynetbot_subscriber_dropped_total", "kind", "invalidation")
	expect(t, reg, 2, "skynetbot_subscriber_malformed_total", "kind", "invalidation")
	expect(t, reg, 1, "skynetbot_subscriber_panics_total", "kind", "invalidation")
}

func TestEvents(t *testing.T) {
	m, reg := newMiddleware(t, &metrics.Options{Namespace: "skynetbot", EventLabel: metrics.Allow("guild.update")})
	f := newFake(t)
	bus := m.Events(f.bus)
	ctx := t.Context()

	f.bus.EXPECT().Publish(gomock.Any(), gomock.Any(), gomock.Any()).Return(nil).Times(3)
	_ = bus.Publish(ctx, "guild.update", 1)
	_ = bus.Publish(ctx, "guild.update", 2)
	_ = bus.Publish(ctx, "user:123", 3)
	expect(t, reg, 2, "skynetbot_distributed_shard_events_sent_total", "event", "guild.update")
	expect(t, reg, 1, "skynetbot_distributed_shard_events_sent_total", "event", "other")

	var handler func(coord.Event)
	f.bus.EXPECT().Subscribe(gomock.Any(), "guild.update", gomock.Any()).DoAndReturn(
		func(_ context.Context, _ string, fn func(coord.Event), _ ...coord.SubscribeOption) (coord.Subscription, error) {
			handler = fn
			return nil, nil
		})
	n := 0
	if _, err := bus.Subscribe(ctx, "guild.update", func(coord.Event) { n++ }); err != nil {
		t.Fatal(err)
	}
	handler(coord.Event{Topic: "guild.update"})
	handler(coord.Event{Topic: "guild.update"})
	if n != 2 {
		t.Errorf("handler called %d times; want 2", n)
	}
	expect(t, reg, 2, "skynetbot_distributed_cache_messages_received_total", "channel", "cgn:shard:event")
	f.set(func(f *fake) { f.evStats = coord.EventStats{Dropped: 4} })
	expect(t, reg, 4, "skynetbot_subscriber_dropped_total", "kind", "event")
}

func TestConnectionState(t *testing.T) {
	m, reg := newMiddleware(t, &metrics.Options{Namespace: "skynetbot"})
	if _, ok := value(t, reg, "skynetbot_redis_connection_state"); ok {
		t.Error("connection state exported before any backend was decorated")
	}
	f := newFake(t)
	b := m.Backend(f)
	for _, c := range []struct {
		state coord.ConnState
		want  float64
	}{{coord.Connected, 1}, {coord.Reconnecting, 2}, {coord.Disconnected, 0}, {coord.Connected, 1}} {
		f.set(func(f *fake) { f.state = c.state })
		expect(t, reg, c.want, "skynetbot_redis_connection_state")
	}

	// A backend without State is read through Health; with two
	// backends the gauge shows the worse.
	plain := coordmock.NewMockBackend(gomock.NewController(t))
	g := newFake(t)
	plain.EXPECT().Locker().Return(g.locker).AnyTimes()
	plain.EXPECT().Sessions().Return(g.sessions).AnyTimes()
	plain.EXPECT().Invalidator().Return(g.inv).AnyTimes()
	plain.EXPECT().Events().Return(g.bus).AnyTimes()
	plain.EXPECT().Health(gomock.Any()).Return(coord.Health{Connection: coord.Reconnecting}).AnyTimes()
	m.Backend(plain)
	expect(t, reg, 2, "skynetbot_redis_connection_state")

	// A backend closed through the decorator is no longer watched.
	f.EXPECT().Close(gomock.Any()).Return(nil)
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.set(func(f *fake) { f.state = coord.Disconnected })
	expect(t, reg, 2, "skynetbot_redis_connection_state")
}

func TestSessions(t *testing.T) {
	m, reg := newMiddleware(t, nil)
	f := newFake(t)
	s := m.Sessions(f.sessions)
	ctx := t.Context()
	f.sessions.EXPECT().Get(gomock.Any(), "tok").Return(&coord.Session{UserID: "u"}, nil)
	f.sessions.EXPECT().Get(gomock.Any(), "gone").Return(nil, coord.ErrNotFound)
	if sess, err := s.Get(ctx, "tok"); err != nil || sess.UserID != "u" {
		t.Fatalf("Get = %v, %v", sess, err)
	}
	if _, err := s.Get(ctx, "gone"); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("Get = %v; want ErrNotFound", err)
	}
	expect(t, reg, 1, "coord_operation_duration_seconds", "op", "session_get", "result", "ok")
	expect(t, reg, 1, "coord_operation_duration_seconds", "op", "session_get", "result", "error")
	expect(t, reg, 1, "coord_operation_errors_total", "op", "session_get", "kind", "not_found")
}

type asBackend struct {
	*coordmock.MockBackend
}

type native struct{ name string }

func (asBackend) As(target any) bool {
	if p, ok := target.(*native); ok {
		*p = native{name: "inner"}
		return true
	}
	return false
}

func TestUnwrapAndAs(t *testing.T) {
	m, _ := newMiddleware(t, nil)
	f := newFake(t)
	inner := asBackend{f.MockBackend}
	b := m.Backend(inner)
	var n native
	if !coord.As(b, &n) || n.name != "inner" {
		t.Errorf("coord.As through the decorator = %v, %q", n.name != "", n.name)
	}
	if a, ok := b.(coord.Aser); !ok || !a.As(&native{}) {
		t.Error("the decorator does not forward As")
	}
	if u, ok := b.(interface{ Unwrap() coord.Backend }); !ok || u.Unwrap() != coord.Backend(inner) {
		t.Error("Unwrap does not return the decorated backend")
	}
	if u, ok := b.Locker().(interface{ Unwrap() coord.Locker }); !ok || u.Unwrap() != coord.Locker(f.locker) {
		t.Error("Locker().Unwrap does not return the decorated locker")
	}
	var s string
	if coord.As(b, &s) {
		t.Error("As filled a target nobody offers")
	}
}

func TestNotConfigured(t *testing.T) {
	m, err := metrics.New(nil, nil)
	if m != nil || err != nil {
		t.Fatalf("New(nil) = %v, %v; want nil, nil", m, err)
	}
	f := newFake(t)
	if got := m.Backend(f); got != coord.Backend(f) {
		t.Error("nil Middleware changed the backend")
	}
	if got := m.Locker(f.locker); got != coord.Locker(f.locker) {
		t.Error("nil Middleware changed the locker")
	}
	if got := m.Sessions(f.sessions); got != coord.SessionStore(f.sessions) {
		t.Error("nil Middleware changed the session store")
	}
	if got := m.Invalidator(f.inv); got != coord.Invalidator(f.inv) {
		t.Error("nil Middleware changed the invalidator")
	}
	if got := m.Events(f.bus); got != coord.EventBus(f.bus) {
		t.Error("nil Middleware changed the event bus")
	}
	m2, _ := newMiddleware(t, nil)
	if m2.Locker(nil) != nil {
		t.Error("decorating nil gave non-nil")
	}
}

func TestRegistration(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m1, err := metrics.New(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := metrics.New(reg, nil)
	if err != nil {
		t.Fatalf("second New on one registry: %v", err)
	}
	f1, f2 := newFake(t), newFake(t)
	i1, i2 := m1.Invalidator(f1.inv), m2.Invalidator(f2.inv)
	f1.inv.EXPECT().Invalidate(gomock.Any(), gomock.Any(), gomock.Any()).Return(nil)
	f2.inv.EXPECT().Invalidate(gomock.Any(), gomock.Any(), gomock.Any()).Return(nil)
	_ = i1.Invalidate(t.Context(), "a", nil)
	_ = i2.Invalidate(t.Context(), "b", nil)
	expect(t, reg, 2, "coord_distributed_cache_invalidations_sent_total", "type", "single")

	// One locker decorated twice is counted once.
	lk, _ := newLock(t, "x")
	f1.set(func(f *fake) { f.held = []coord.Lock{lk} })
	m1.Locker(f1.locker)
	m2.Locker(m1.Locker(f1.locker))
	expect(t, reg, 1, "coord_distributed_locks_active")

	if _, err := metrics.New(reg, &metrics.Options{Namespace: "bad-name"}); err == nil {
		t.Error("New accepted an invalid namespace")
	}
	other := prometheus.NewRegistry()
	other.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "coord_lock_leases_lost_total", Help: "x"}))
	if _, err := metrics.New(other, nil); err == nil {
		t.Error("New accepted a registry with a same-named metric of another type")
	}
	if n, err := testutil.GatherAndCount(other); err != nil || n != 1 {
		t.Errorf("after a failed New the registry has %d series (%v); want only its own 1", n, err)
	}
}

// The connection state is found through other decorators' Unwrap.
func TestConnectionStateThroughDecorators(t *testing.T) {
	m, reg := newMiddleware(t, nil)
	f := newFake(t)
	inner := logging.New(slog.New(slog.DiscardHandler), nil).Backend(f)
	if _, ok := inner.(interface{ State() coord.ConnState }); ok {
		t.Fatal("the logging decorator has State itself; this test needs one that has not")
	}
	m.Backend(inner)
	f.set(func(f *fake) { f.state = coord.Reconnecting })
	expect(t, reg, 2, "coord_redis_connection_state")
}

// The decorators have the shape of middleware.
var (
	_ func(coord.Backend) coord.Backend           = (*metrics.Middleware)(nil).Backend
	_ func(coord.Locker) coord.Locker             = (*metrics.Middleware)(nil).Locker
	_ func(coord.SessionStore) coord.SessionStore = (*metrics.Middleware)(nil).Sessions
	_ func(coord.Invalidator) coord.Invalidator   = (*metrics.Middleware)(nil).Invalidator
	_ func(coord.EventBus) coord.EventBus         = (*metrics.Middleware)(nil).Events
)

// A backend closed through the decorator is dropped, and the counters of
// its Stats keep their last values.
func TestClosedBackendRetired(t *testing.T) {
	m, reg := newMiddleware(t, nil)
	f, g := newFake(t), newFake(t)
	b := m.Backend(f)
	m.Backend(g)
	lk, _ := newLock(t, "x")
	f.set(func(f *fake) {
		f.held = []coord.Lock{lk}
		f.invStats = coord.InvalidatorStats{Dropped: 5}
		f.evStats = coord.EventStats{Malformed: 2}
	})
	g.set(func(g *fake) { g.invStats = coord.InvalidatorStats{Dropped: 1} })
	expect(t, reg, 1, "coord_distributed_locks_active")
	expect(t, reg, 6, "coord_subscriber_dropped_total", "kind", "invalidation")

	f.EXPECT().Close(gomock.Any()).Return(nil)
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	expect(t, reg, 0, "coord_distributed_locks_active")
	expect(t, reg, 6, "coord_subscriber_dropped_total", "kind", "invalidation")
	expect(t, reg, 2, "coord_subscriber_malformed_total", "kind", "event")
	g.set(func(g *fake) { g.invStats = coord.InvalidatorStats{Dropped: 3} })
	expect(t, reg, 8, "coord_subscriber_dropped_total", "kind", "invalidation")
}
