package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// Run runs every case of the suite on the backend maker builds: the cases
// of [RunBackend], [RunLocker], [RunSessionStore], [RunInvalidator],
// [RunEventBus], [RunJobs], [RunRateLimiter], [RunRWLocker],
// [RunSemaphores], [RunElector] and [RunStreams], each group as a subtest
// of t.
//
// The serial cases of every group run first, one at a time and alone (no
// other case of the suite runs meanwhile), group after group; then the
// parallel cases of every group run together, as parallel subtests of
// their groups (so -parallel bounds how many run at once). The groups
// resume only when the test function that called Run returns: call Run
// last.
func Run(t *testing.T, maker HarnessMaker) {
	t.Helper()
	runGroups(t, maker, []group{
		{"Backend", backendCases()},
		{"Locker", lockerCases()},
		{"SessionStore", sessionCases()},
		{"Invalidator", append(invalidatorCases(), wireInvalidatorCases()...)},
		{"EventBus", append(eventCases(), wireEventCases()...)},
		{"Jobs", jobCases()},
		{"RateLimiter", rateLimiterCases()},
		{"RWLocker", rwLockerCases()},
		{"Semaphores", semaphoreCases()},
		{"Elector", electionCases()},
		{"Streams", streamCases()},
	})
}

// group is a named list of cases, run as a subtest.
type group struct {
	name  string
	cases []testCase
}

// runGroups runs each group as a subtest of t: the serial cases of every
// group first, one at a time while runGroups' caller waits (so alone:
// the groups before have paused, and no parallel case has started), then
// the parallel cases of every group together, once the test function
// that called runGroups has returned.
func runGroups(t *testing.T, maker HarnessMaker, groups []group) {
	t.Helper()
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				if c.serial {
					t.Run(c.name, func(t *testing.T) { runCase(t, maker, c) })
				}
			}
			t.Parallel()
			for _, c := range g.cases {
				if !c.serial {
					t.Run(c.name, func(t *testing.T) {
						t.Parallel()
						runCase(t, maker, c)
					})
				}
			}
		})
	}
}

// RunBackend runs the cases about a Backend as a whole: declared
// capabilities, instance IDs, health, and the lifecycle (Close is
// idempotent, releases held locks, ends subscriptions, stops goroutines,
// and every later call returns [coord.ErrClosed]).
func RunBackend(t *testing.T, maker HarnessMaker) {
	t.Helper()
	runCases(t, maker, backendCases())
}

// RunLocker runs the cases about [coord.Locker], [coord.Lock] and
// [coord.WithLock].
func RunLocker(t *testing.T, maker HarnessMaker) {
	t.Helper()
	runCases(t, maker, lockerCases())
}

// RunSessionStore runs the cases about [coord.SessionStore].
func RunSessionStore(t *testing.T, maker HarnessMaker) {
	t.Helper()
	runCases(t, maker, sessionCases())
}

// RunInvalidator runs the cases about [coord.Invalidator].
func RunInvalidator(t *testing.T, maker HarnessMaker) {
	t.Helper()
	runCases(t, maker, append(invalidatorCases(), wireInvalidatorCases()...))
}

// RunEventBus runs the cases about [coord.EventBus].
func RunEventBus(t *testing.T, maker HarnessMaker) {
	t.Helper()
	runCases(t, maker, append(eventCases(), wireEventCases()...))
}

// capability names an optional ability a case needs.
type capability int

const (
	capNone capability = iota
	capCut
	capRestart
	capForeign
)

func (c capability) String() string {
	switch c {
	case capCut:
		return "CutSubscription"
	case capRestart:
		return "Restart"
	case capForeign:
		return "ForeignPublish"
	}
	return "none"
}

func (c capability) declared(caps Capabilities) bool {
	switch c {
	case capCut:
		return caps.CutSubscription
	case capRestart:
		return caps.Restart
	case capForeign:
		return caps.ForeignPublish
	}
	return true
}

// testCase is one named case of the suite.
type testCase struct {
	name string
	// serial cases do not run in parallel with the other cases of their
	// group: their bounds are timing-sensitive, or they count goroutines.
	serial bool
	needs  capability
	run    func(t *testing.T, h Harness)
}

func runCases(t *testing.T, maker HarnessMaker, cases []testCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !c.serial {
				t.Parallel()
			}
			runCase(t, maker, c)
		})
	}
}

// runCase runs c on a harness of maker's, or skips it when the harness
// lacks a capability c needs.
func runCase(t *testing.T, maker HarnessMaker, c testCase) {
	t.Helper()
	h := maker(t)
	if h == nil {
		t.Fatal("HarnessMaker returned nil")
	}
	if !c.needs.declared(h.Capabilities()) {
		t.Skipf("the harness does not declare capability %s", c.needs)
	}
	c.run(t, h)
}

// instances returns n new instances of h.
func instances(t *testing.T, h Harness, n int) []coord.Backend {
	t.Helper()
	out := make([]coord.Backend, n)
	for i := range out {
		out[i] = h.NewInstance(t)
		if out[i] == nil {
			t.Fatal("Harness.NewInstance returned nil")
		}
	}
	return out
}

// eventually fails t unless cond becomes true within d. It must be called
// from the test's goroutine.
func eventually(t *testing.T, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !within(d, cond) {
		t.Fatalf("not within %v: %s", d, fmt.Sprintf(format, lazy(args)...))
	}
}

// lazy evaluates the arguments of type func() any, so that a failure
// message shows the state at the failure, not at the call.
func lazy(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		if f, ok := a.(func() any); ok {
			a = f()
		}
		out[i] = a
	}
	return out
}

// retrying is eventually for a cond that acts (publishes a message and
// looks for it): it calls cond every retryEvery rather than every
// pollEvery.
func retrying(t *testing.T, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !withinEvery(d, retryEvery, cond) {
		t.Fatalf("not within %v: %s", d, fmt.Sprintf(format, lazy(args)...))
	}
}

// within reports whether cond becomes true within d.
func within(d time.Duration, cond func() bool) bool { return withinEvery(d, pollEvery, cond) }

func withinEvery(d, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
}

// closedWithin reports whether ch is closed within d.
func closedWithin(ch <-chan struct{}, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
		return true
	case <-timer.C:
		return false
	}
}

// isClosed reports whether ch is closed now.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// hold lets d pass: the scenario needs time to pass (a lease to outlive
// its TTL, a waiter to start waiting), not a condition to become true.
func hold(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// recorder collects what a handler receives.
type recorder[T any] struct {
	mu    sync.Mutex
	items []T
}

func (r *recorder[T]) add(v T) {
	r.mu.Lock()
	r.items = append(r.items, v)
	r.mu.Unlock()
}

func (r *recorder[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.items...)
}

func (r *recorder[T]) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items)
}

// last returns the last item received and whether there was one (one
// look under the lock: all()[len()-1] can race with an add between the
// two calls).
func (r *recorder[T]) last() (T, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.items) == 0 {
		var zero T
		return zero, false
	}
	return r.items[len(r.items)-1], true
}

// any reports whether some received item satisfies f.
func (r *recorder[T]) any(f func(T) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range r.items {
		if f(v) {
			return true
		}
	}
	return false
}

// gate blocks handlers until it is opened; the test opens it in Cleanup at
// the latest, before the harness closes the instances.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

func newGate(t *testing.T) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

func (g *gate) wait() { <-g.ch }

// signal is a channel closed once.
type signal struct {
	once sync.Once
	ch   chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

func (s *signal) fire() { s.once.Do(func() { close(s.ch) }) }

// ctxOf returns the test's context. It ends before the harness closes
// the instances, which ends every subscription made with it.
func ctxOf(t *testing.T) context.Context { return t.Context() }

// must fails t on err.
func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// badNames are names every method that takes a name must refuse.
func badNames() map[string]string {
	long := make([]byte, coord.MaxNameLen+1)
	for i := range long {
		long[i] = 'a'
	}
	return map[string]string{
		"empty":           "",
		"over MaxNameLen": string(long),
		"newline":         "a\nb",
		"NUL":             "a\x00b",
		"DEL":             "a\x7fb",
		"tab":             "a\tb",
		"invalid UTF-8":   "a\xff\xfeb",
	}
}

// goodNames are unusual names every method must accept and keep apart.
func goodNames() []string {
	long := make([]byte, coord.MaxNameLen)
	for i := range long {
		long[i] = 'z'
	}
	return []string{
		string(long),
		"ключ:☃:名前",
		"{tag}:a}b{c",
		"with space/and*glob?chars[x]",
		"a",
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
