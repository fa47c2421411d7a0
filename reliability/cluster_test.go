package reliability

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// clusterNode makes a Backend on a new cluster client of cl.
func clusterNode(tb testing.TB, cl *redistest.Cluster, prefix string, opts *coordredis.Options) *node {
	tb.Helper()
	name := uniq("relc-")
	o := cl.ClusterOptions()
	o.ClientName = name
	if opts == nil {
		opts = &coordredis.Options{}
	}
	opts.Prefix = prefix
	return newNode(tb, goredis.NewClusterClient(o), name, opts)
}

// TestCluster starts one three-master cluster and runs on it the
// exclusion checker and the faults of a cluster. The whole conformance
// suite on a cluster, through the same kind of harness (a cluster client
// per instance, a prefix per case, cuts by CLIENT KILL on every node), is
// backend/redis's TestConformanceCluster.
func TestCluster(t *testing.T) {
	start := time.Now()
	cl := redistest.StartCluster(t, 3)
	t.Logf("cluster of 3 masters up in %v", time.Since(start).Round(time.Millisecond))

	t.Run("Exclusion", func(t *testing.T) {
		prefix := uniq("x") + ":"
		checkExclusion(t, "cluster", func(t *testing.T, i int) coord.Backend {
			return clusterNode(t, cl, prefix, nil)
		})
	})
	t.Run("Names", func(t *testing.T) {
		prefix := uniq("n") + ":"
		checkNames(t, func(t *testing.T) (coord.Backend, coord.Backend) {
			return clusterNode(t, cl, prefix, nil), clusterNode(t, cl, prefix, nil)
		})
	})
	t.Run("NodeKilled", func(t *testing.T) { testClusterNodeKilled(t, cl) })
	t.Run("SlotsSpread", func(t *testing.T) {
		// Leases of different resources live on different masters: the
		// hash tag is the resource, not a fixed tag.
		n := clusterNode(t, cl, uniq("s")+":", nil)
		cc := n.client.(*goredis.ClusterClient)
		ctx := t.Context()
		masters := map[string]bool{}
		for i := range 32 {
			res := fmt.Sprintf("res-%d", i)
			l, err := n.Locker().Acquire(ctx, res, coord.WithTTL(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			var (
				mu  sync.Mutex
				key string
			)
			err = cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
				ks, err := c.Keys(ctx, "*lock:{"+res+"}").Result()
				mu.Lock()
				defer mu.Unlock()
				if len(ks) > 0 {
					key = ks[0]
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if key == "" {
				t.Fatalf("no lease key found for %s", res)
			}
			c, err := cc.MasterForKey(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			masters[c.Options().Addr] = true
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if len(masters) < 2 {
			t.Errorf("32 resources' leases all on %d master(s); want them spread over the cluster", len(masters))
		}
		t.Logf("32 resources' leases on %d of 3 masters", len(masters))
	})
}

// clusterFaultNode is clusterNode with short timeouts, for a test that
// kills a node.
func clusterFaultNode(tb testing.TB, cl *redistest.Cluster, prefix string) *node {
	tb.Helper()
	name := uniq("relcf-")
	o := cl.ClusterOptions()
	o.ClientName = name
	o.DialTimeout = 500 * time.Millisecond
	o.ReadTimeout = 500 * time.Millisecond
	o.WriteTimeout = 500 * time.Millisecond
	o.MaxRetries = 1
	return newNode(tb, goredis.NewClusterClient(o), name, &coordredis.Options{Prefix: prefix, HealthInterval: 200 * time.Millisecond})
}

// testClusterNodeKilled kills (SIGKILL) the master that holds a lease's
// slot under load and restarts it (empty, same node ID and slots): the
// holder's lease is lost (Done closed), every error wraps a coord
// sentinel, and once the cluster reports ok again everything works
// within recoveryBound, with a higher fence for the next holder. It runs
// last on the shared cluster.
func testClusterNodeKilled(t *testing.T, cl *redistest.Cluster) {
	prefix := uniq("nk") + ":"
	a := clusterFaultNode(t, cl, prefix)
	b := clusterFaultNode(t, cl, prefix)
	ctx := t.Context()
	topic := uniq("nk-topic-")
	invs := &coordtest.Recorder[coord.Invalidation]{}
	events := &coordtest.Recorder[coord.Event]{}
	if _, err := a.Invalidator().Subscribe(ctx, invs.Add); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Events().Subscribe(ctx, topic, events.Add); err != nil {
		t.Fatal(err)
	}
	deliver := func(marker string) bool {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_ = b.Events().Publish(pctx, topic, marker)
		return events.Count(func(e coord.Event) bool { return string(e.Payload) == `"`+marker+`"` }) > 0
	}
	if _, ok := coordtest.Poll(5*time.Second, 50*time.Millisecond, func() bool { return deliver("before") }); !ok {
		t.Fatal("events not delivered before the kill")
	}
	ld := startLoad(t, b, topic)
	held, err := a.Locker().Acquire(ctx, "nk:held", coord.WithTTL(faultTTL), coord.WithAutoRenew())
	if err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 5*time.Second, func() bool { return ld.recovered(time.Now().Add(-time.Second)) }, "load running: %v", ld)
	cc := a.client.(*goredis.ClusterClient)
	owner, err := cc.MasterForKey(ctx, a.prefixed("lock:{nk:held}"))
	if err != nil {
		t.Fatal(err)
	}
	victim := -1
	for i, s := range cl.Nodes() {
		if s.Addr() == owner.Options().Addr {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("no node at %s", owner.Options().Addr)
	}

	killAt := time.Now()
	cl.Kill(t, victim)
	if !coordtest.ClosedWithin(held.Done(), lossBound) {
		t.Fatalf("Done of a lease on the killed master not closed within %v", lossBound)
	}
	lostAfter := time.Since(killAt)
	// The other masters stop serving once they mark the node failed
	// (cluster-node-timeout 2s; cluster-require-full-coverage yes).
	downHealth, _ := coordtest.Poll(downBound+2*time.Second, coordtest.PollEvery, healthIs(b, coord.Unhealthy))
	purgesBefore := invs.Count(isPurge("reconnect"))
	cl.Restart(t, victim)
	back := time.Now()
	next, unavailable, err := acquireAfterOutage(ctx, b.Locker(), back, "nk:held")
	if err != nil {
		t.Fatalf("Acquire after the node came back (after %d tries that failed with ErrUnavailable): %v", unavailable, err)
	}
	acquireIn := time.Since(back)
	if acquireIn > recoveryBound {
		t.Errorf("next holder %v after the cluster was ok again, want within %v", acquireIn, recoveryBound)
	}
	if next.Fence() <= held.Fence() {
		t.Errorf("fence after the restart %d, not above the lost lease's %d", next.Fence(), held.Fence())
	}
	loadIn := by(t, back, func() bool { return ld.recovered(back) }, "load recovered: %v", ld)
	deliverIn := by(t, back, func() bool { return deliver("after") }, "events delivered after the node came back")
	healthyIn := by(t, back, func() bool { return healthIs(a, coord.Healthy)() && healthIs(b, coord.Healthy)() },
		"both instances healthy after the node came back")
	_ = next.Release(ctx)
	ld.stop()
	t.Logf("master %d of 3 killed: lease Done %v after the kill; Health unhealthy after %v; after the cluster was ok again: next holder %v (fence %d > %d; ErrUnavailable %d times before), load %v, events %v, healthy %v; reconnect purges: %d before the restart, %d after; load: %v",
		victim, lostAfter.Round(time.Millisecond), downHealth.Round(time.Millisecond), acquireIn.Round(time.Millisecond),
		next.Fence(), held.Fence(), unavailable, loadIn.Round(time.Millisecond), deliverIn.Round(time.Millisecond), healthyIn.Round(time.Millisecond),
		purgesBefore, invs.Count(isPurge("reconnect")), ld)
	if ld.bad.Load() != 0 {
		t.Errorf("%d errors wrapped no coord sentinel", ld.bad.Load())
	}
}
