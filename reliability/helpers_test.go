package reliability

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// seq makes names unique within the test binary: key prefixes, client
// names, resources.
var seq atomic.Int64

// uniq returns prefix followed by a number not used before in this run.
func uniq(prefix string) string { return fmt.Sprintf("%s%d", prefix, seq.Add(1)) }

// node is a Backend with the client made for it. The test owns the client
// and closes it right after the Backend (a Backend never closes a client
// it was given).
type node struct {
	*coordredis.Backend
	client goredis.UniversalClient
	name   string // the client's CLIENT SETNAME, to find its connections
	prefix string
	states *coordtest.Recorder[coordredis.StateChange] // when made by faultNode
}

// prefixed returns key under the node's prefix.
func (n *node) prefixed(key string) string { return n.prefix + key }

// Close closes the Backend, then its client.
func (n *node) Close(ctx context.Context) error {
	err := n.Backend.Close(ctx)
	_ = n.client.Close()
	return err
}

// newNode makes a Backend on client, closed with the client at the end of
// the test.
func newNode(tb testing.TB, client goredis.UniversalClient, name string, opts *coordredis.Options) *node {
	tb.Helper()
	b, err := coordredis.New(client, opts)
	if err != nil {
		_ = client.Close()
		tb.Fatal(err)
	}
	n := &node{Backend: b, client: client, name: name}
	if opts != nil {
		n.prefix = opts.Prefix
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil && !errors.Is(err, coord.ErrClosed) {
			// A server killed by the test may have taken the leases with
			// it; Close still stopped everything.
			tb.Logf("Close of %s: %v", name, err)
		}
	})
	return n
}

// faultClientOptions tunes a go-redis client for tests that stop the
// server: short timeouts, so that a stopped server shows as failed
// commands within a second rather than after go-redis's defaults (5s
// dial, 3s read, 3 retries).
func faultClientOptions(o *goredis.Options, name string) *goredis.Options {
	o.ClientName = name
	o.DialTimeout = 500 * time.Millisecond
	o.ReadTimeout = 500 * time.Millisecond
	o.WriteTimeout = 500 * time.Millisecond
	o.MaxRetries = 1
	o.DisableIdentity = true
	return o
}

// singleNode makes a Backend on a new client of srv with the given
// prefix.
func singleNode(tb testing.TB, srv *redistest.Server, prefix string, opts *coordredis.Options) *node {
	tb.Helper()
	name := uniq("rel-")
	o := srv.Options()
	o.ClientName = name
	if opts == nil {
		opts = &coordredis.Options{}
	}
	opts.Prefix = prefix
	return newNode(tb, goredis.NewClient(o), name, opts)
}

// faultNode makes a Backend on a client with short timeouts (see
// faultClientOptions) and a 200ms subscriber health interval.
func faultNode(tb testing.TB, srv *redistest.Server, prefix string) *node {
	tb.Helper()
	name := uniq("fault-")
	c := goredis.NewClient(faultClientOptions(srv.Options(), name))
	states := &coordtest.Recorder[coordredis.StateChange]{}
	n := newNode(tb, c, name, &coordredis.Options{Prefix: prefix, HealthInterval: 200 * time.Millisecond, OnStateChange: states.Add})
	n.states = states
	return n
}

// healthSample is one Health status seen by a healthWatch, with the time
// the Health call started (it takes up to a second).
type healthSample struct {
	at     time.Time
	status coord.HealthStatus
}

// healthWatch polls a Backend's Health every 50ms until stopped, so a test
// can check the status throughout a fault, not only at chosen moments.
type healthWatch struct {
	samples coordtest.Recorder[healthSample]
	stop    func()
}

func watchHealth(tb testing.TB, b coord.Backend) *healthWatch {
	w := &healthWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			start := time.Now()
			hctx, hcancel := context.WithTimeout(ctx, time.Second)
			st := b.Health(hctx).Status
			hcancel()
			if ctx.Err() != nil {
				return
			}
			w.samples.Add(healthSample{start, st})
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	w.stop = func() { cancel(); wg.Wait() }
	tb.Cleanup(w.stop)
	return w
}

// between returns the statuses of the Health calls started from from to
// to.
func (w *healthWatch) between(from, to time.Time) map[coord.HealthStatus]int {
	out := map[coord.HealthStatus]int{}
	for _, s := range w.samples.All() {
		if !s.at.Before(from) && !s.at.After(to) {
			out[s.status]++
		}
	}
	return out
}

// by fails t unless cond is true by recoveryBound after since (polling
// at least once), and returns how long after since it was seen true.
func by(tb testing.TB, since time.Time, cond func() bool, format string, args ...any) time.Duration {
	tb.Helper()
	if _, ok := coordtest.Poll(max(time.Until(since.Add(recoveryBound)), 0), coordtest.PollEvery, cond); !ok {
		tb.Fatalf("not within %v: %s", recoveryBound, fmt.Sprintf(format, args...))
	}
	return time.Since(since)
}

// isPurge reports whether inv is a PurgeAll with the given reason (any
// reason when reason is empty).
func isPurge(reason string) func(coord.Invalidation) bool {
	return func(inv coord.Invalidation) bool {
		return inv.Kind == coord.PurgeAll && (reason == "" || inv.Reason == reason)
	}
}

// knownError reports whether err wraps one of coord's sentinels, as every
// error a backend returns must.
func knownError(err error) bool {
	for _, s := range []error{coord.ErrNotAcquired, coord.ErrNotHeld, coord.ErrLeaseLost, coord.ErrNotFound,
		coord.ErrClosed, coord.ErrInvalid, coord.ErrUnavailable} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// healthIs returns a condition that is true when b's Health has status s.
// Each Health call is bounded to a second, so a paused server cannot hang
// it.
func healthIs(b coord.Backend, s coord.HealthStatus) func() bool {
	return func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return b.Health(ctx).Status == s
	}
}

// opCtx returns a context for one operation of a load goroutine.
func opCtx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, 2*time.Second)
}
