package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/conformance"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// channelName maps the suite's wire channel names to ours.
func channelName(prefix, name string) string {
	switch name {
	case "invalidate":
		return prefix + "cache:invalidate"
	case "pattern":
		return prefix + "cache:invalidate:pattern"
	case "event":
		return prefix + "shard:event"
	}
	return prefix + name
}

// instance is a Backend with the client made for it: the harness owns
// the client and closes it right after the Backend (a Backend never closes
// a client it was given).
type instance struct {
	*coordredis.Backend
	client goredis.UniversalClient
}

func (in *instance) Close(ctx context.Context) error {
	err := in.Backend.Close(ctx)
	_ = in.client.Close()
	return err
}

// newInstance makes a Backend on c, closed (with c) at the end of the
// test.
func newInstance(t *testing.T, c goredis.UniversalClient, prefix string) *instance {
	t.Helper()
	b, err := coordredis.New(c, &coordredis.Options{Prefix: prefix, HealthInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{Backend: b, client: c}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := in.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return in
}

// miniHarness runs the suite on a miniredis per case.
type miniHarness struct {
	m      *miniredis.Miniredis
	prefix string
}

func (h *miniHarness) NewInstance(t *testing.T) coord.Backend {
	return newInstance(t, goredis.NewClient(&goredis.Options{Addr: h.m.Addr()}), h.prefix)
}

func (h *miniHarness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{ForeignPublish: true}
}

func (h *miniHarness) PublishRaw(t *testing.T, channel string, payload []byte) {
	h.m.Publish(channelName(h.prefix, channel), string(payload))
}

func TestConformanceMiniredis(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		m := miniredis.RunT(t)
		m.ClockTTL(true)
		return &miniHarness{m: m, prefix: "cgn:"}
	})
}

var casePrefix atomic.Int64

// realHarness runs the suite on real redis-servers (one, or the nodes of
// a Cluster) shared by the cases of a top-level test, each case under its
// own key prefix. Each instance has its own client with a unique client
// name, so that a cut kills only that instance's subscriber connection.
type realHarness struct {
	nodes     []*redistest.Server
	newClient func(name string) goredis.UniversalClient
	prefix    string

	mu    sync.Mutex
	names map[coord.Backend]string
}

func newRealHarness(srv *redistest.Server) *realHarness {
	return &realHarness{
		nodes: []*redistest.Server{srv},
		newClient: func(name string) goredis.UniversalClient {
			o := srv.Options()
			o.ClientName = name
			return goredis.NewClient(o)
		},
		prefix: fmt.Sprintf("c%d:", casePrefix.Add(1)),
		names:  map[coord.Backend]string{},
	}
}

func newClusterHarness(c *redistest.Cluster) *realHarness {
	return &realHarness{
		nodes: c.Nodes(),
		newClient: func(name string) goredis.UniversalClient {
			o := c.ClusterOptions()
			o.ClientName = name
			return goredis.NewClusterClient(o)
		},
		prefix: fmt.Sprintf("c%d:", casePrefix.Add(1)),
		names:  map[coord.Backend]string{},
	}
}

func (h *realHarness) NewInstance(t *testing.T) coord.Backend {
	name := fmt.Sprintf("coordtest-%d", casePrefix.Add(1))
	b := newInstance(t, h.newClient(name), h.prefix)
	h.mu.Lock()
	h.names[b] = name
	h.mu.Unlock()
	return b
}

func (h *realHarness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{CutSubscription: true, ForeignPublish: true}
}

func (h *realHarness) PublishRaw(t *testing.T, channel string, payload []byte) {
	h.nodes[0].Do(t, "PUBLISH", channelName(h.prefix, channel), payload)
}

// CutSubscription kills the subscriber connection of one instance (CLIENT
// KILL ID of its pubsub connections, on every node), leaving every other
// client alone.
func (h *realHarness) CutSubscription(t *testing.T, instance coord.Backend) {
	h.mu.Lock()
	name := h.names[instance]
	h.mu.Unlock()
	killed := 0
	for _, srv := range h.nodes {
		killed += srv.KillPubSubClientsNamed(t, name)
	}
	if killed == 0 {
		t.Fatalf("no subscriber connection named %s to cut", name)
	}
}

// restartHarness runs the cases that restart the server, each on a server
// of its own.
type restartHarness struct {
	*realHarness
}

func (h restartHarness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{CutSubscription: true, ForeignPublish: true, Restart: true}
}

func (h restartHarness) Restart(t *testing.T) { h.nodes[0].Restart(t) }

func TestConformanceRedis(t *testing.T) {
	srv := redistest.Start(t)
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		return newRealHarness(srv)
	})
}

func TestConformanceRedisRestart(t *testing.T) {
	conformance.RunBackend(t, func(t *testing.T) conformance.Harness {
		return restartHarness{newRealHarness(redistest.Start(t))}
	})
	t.Run("RateLimiter", func(t *testing.T) {
		conformance.RunRateLimiter(t, func(t *testing.T) conformance.Harness {
			return restartHarness{newRealHarness(redistest.Start(t))}
		})
	})
}

// TestConformanceCluster runs the suite on a three-master Redis Cluster
// through a go-redis ClusterClient: every multi-key script must keep its
// keys in one hash slot.
func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a cluster takes seconds to form; skipped with -short")
	}
	c := redistest.StartCluster(t, 3)
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		return newClusterHarness(c)
	})
}

func newSentinelHarness(g *redistest.Sentinel) *realHarness {
	return &realHarness{
		nodes: g.DataNodes(),
		newClient: func(name string) goredis.UniversalClient {
			o := g.FailoverOptions()
			o.ClientName = name
			return goredis.NewFailoverClient(o)
		},
		prefix: fmt.Sprintf("c%d:", casePrefix.Add(1)),
		names:  map[coord.Backend]string{},
	}
}

// TestConformanceSentinel runs the suite through a go-redis failover
// client of a Sentinel group (master, replica, three sentinels).
func TestConformanceSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("a Sentinel group takes seconds to form; skipped with -short")
	}
	g := redistest.StartSentinel(t)
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		h := newSentinelHarness(g)
		h.nodes = []*redistest.Server{g.Master(t)}
		logSentinelEvents(t, g)
		return h
	})
}

// logSentinelEvents logs, at the end of t, what the sentinels of g logged
// about the master during t (it going down, a failover, TILT mode): a
// failover nobody asked for loses the writes the replica had not yet
// received, and explains a case that saw leases or deliveries go wrong.
func logSentinelEvents(t *testing.T, g *redistest.Sentinel) {
	start := time.Now()
	t.Cleanup(func() {
		if ev := g.Events(start); len(ev) > 0 {
			t.Logf("the sentinels' view of the master changed during this case:\n%s", strings.Join(ev, "\n"))
		}
	})
}

// TestSentinelFailover: after a Sentinel failover the Backend works on the
// new master by itself: leases, sessions, invalidations and events.
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("a Sentinel group takes seconds to form; skipped with -short")
	}
	g := redistest.StartSentinel(t)
	h := newSentinelHarness(g)
	a, b := h.NewInstance(t), h.NewInstance(t)
	ctx := t.Context()
	var got coordtest.Recorder[coord.Invalidation]
	if _, err := b.Invalidator().Subscribe(ctx, got.Add); err != nil {
		t.Fatal(err)
	}
	l, err := a.Locker().Acquire(ctx, "before", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	g.Failover(t)
	coordtest.Eventually(t, 20*time.Second, func() bool {
		l2, err := a.Locker().Acquire(ctx, "after", coord.WithTTL(time.Second), coord.WithRetry(0, 0))
		if err != nil {
			return false
		}
		return l2.Fence() > 0 && l2.Release(ctx) == nil
	}, "leases on the new master")
	coordtest.Eventually(t, 10*time.Second, func() bool {
		s, err := a.Sessions().Create(ctx, "u", map[string]any{"a": 1})
		if err != nil {
			return false
		}
		_, err = b.Sessions().Get(ctx, s.ID)
		return err == nil
	}, "sessions on the new master")
	coordtest.Eventually(t, 10*time.Second, func() bool {
		_ = a.Invalidator().Invalidate(ctx, "after-failover", nil)
		for _, i := range got.All() {
			if i.Key == "after-failover" {
				return true
			}
		}
		return false
	}, "invalidations after the failover")
	_ = l.Release(ctx) // replicated before the failover, or lost with it
}
