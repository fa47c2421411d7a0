package redistest

import (
	"testing"
	"time"

	"github.com/cgn-bot/coord/internal/coordtest"
)

func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	start := time.Now()
	g := StartSentinel(t)
	t.Logf("sentinel group ready in %v", time.Since(start))
	if g.MasterName() != "mymaster" || len(g.SentinelAddrs()) != 3 {
		t.Fatalf("MasterName %q, SentinelAddrs %v", g.MasterName(), g.SentinelAddrs())
	}
	c := g.FailoverClient(t)
	ctx := t.Context()
	if err := c.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatalf("SET through failover client: %v", err)
	}
	first := g.Master(t)
	if first != g.DataNodes()[0] {
		t.Fatalf("initial master %s, want %s", first.Addr(), g.DataNodes()[0].Addr())
	}
	start = time.Now()
	g.Failover(t)
	t.Logf("failover done in %v", time.Since(start))
	second := g.Master(t)
	if second == first {
		t.Fatalf("master still %s after failover", first.Addr())
	}
	// The client follows the switch; the replicated key survived.
	coordtest.Eventually(t, 5*time.Second, func() bool {
		return c.Set(ctx, "k2", "after", 0).Err() == nil
	}, "failover client writes to the new master")
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "before" {
		d := g.DataNodes()
		t.Fatalf("GET k after failover = %q, %v (node 0 has %v, node 1 has %v; client at %s)",
			got, err, d[0].Do(t, "GET", "k"), d[1].Do(t, "GET", "k"), c.Options().Addr)
	}
	if got := second.Do(t, "GET", "k2"); got != "after" {
		t.Fatalf("k2 on the new master = %v, want after", got)
	}

	// And back: the former master was turned into an in-sync replica.
	g.Failover(t)
	if g.Master(t) != first {
		t.Fatalf("master after the second failover is %s, want %s", g.Master(t).Addr(), first.Addr())
	}
	coordtest.Eventually(t, 5*time.Second, func() bool {
		return c.Set(ctx, "k3", "back", 0).Err() == nil
	}, "failover client writes after the second failover")

}

func TestSentinelKillMaster(t *testing.T) {
	t.Parallel()
	g := StartSentinel(t)
	c := g.FailoverClient(t)
	ctx := t.Context()
	old := g.Master(t)
	old.Kill(t)
	start := time.Now()
	newMaster := g.WaitForNewMaster(t, old)
	t.Logf("sentinels failed over from a killed master in %v", time.Since(start))
	if newMaster == old || g.Master(t) != newMaster {
		t.Fatalf("new master %s, sentinel reports %s", newMaster.Addr(), g.Master(t).Addr())
	}
	coordtest.Eventually(t, 5*time.Second, func() bool {
		return c.Set(ctx, "k", "v", 0).Err() == nil
	}, "failover client writes after the automatic failover")
	old.Restart(t)
	g.WaitHealthy(t) // the old master rejoins as a replica
	if got := old.Do(t, "GET", "k"); got != "v" {
		t.Fatalf("k on the rejoined replica = %v, want v", got)
	}
}

func TestSentinelACLUser(t *testing.T) {
	t.Parallel()
	// The sentinels authenticate to the data nodes with auth-user and
	// auth-pass, also when reconfiguring them during a failover.
	g := StartSentinel(t, WithACLUser("app", "p4ss"))
	c := g.FailoverClient(t)
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET as ACL user: %v", err)
	}
	g.Failover(t)
	coordtest.Eventually(t, 5*time.Second, func() bool {
		return c.Set(ctx, "k", "v2", 0).Err() == nil
	}, "write after failover")
}
