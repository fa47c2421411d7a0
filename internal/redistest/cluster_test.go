package redistest

import (
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord/internal/coordtest"
)

func TestCluster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := StartCluster(t, 3)
	t.Logf("cluster of 3 ready in %v", time.Since(start))
	if len(c.Addrs()) != 3 {
		t.Fatalf("Addrs = %v", c.Addrs())
	}
	cc := c.ClusterClient(t)
	ctx := t.Context()
	// Keys spread over all nodes.
	owners := map[string]bool{}
	for i := range 30 {
		k := fmt.Sprintf("key-%d", i)
		if err := cc.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
		n, err := cc.MasterForKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		owners[n.Options().Addr] = true
	}
	if len(owners) != 3 {
		t.Errorf("30 keys landed on %d nodes, want 3", len(owners))
	}
	for i := range 30 {
		k := fmt.Sprintf("key-%d", i)
		got, err := cc.Get(ctx, k).Int()
		if err != nil || got != i {
			t.Fatalf("GET %s = %d, %v; want %d", k, got, err, i)
		}
	}
	// A hash tag keeps a multi-key command in one slot.
	if err := cc.MSet(ctx, "{t}a", 1, "{t}b", 2).Err(); err != nil {
		t.Fatalf("MSET with hash tag: %v", err)
	}

	c.FlushAll(t)
	if n, err := cc.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE after FlushAll = %d, %v", n, err)
	}

	// Kill and restart the node owning a key: it comes back with its slots.
	n, err := cc.MasterForKey(ctx, "key-0")
	if err != nil {
		t.Fatal(err)
	}
	idx := -1
	for i, a := range c.Addrs() {
		if a == n.Options().Addr {
			idx = i
		}
	}
	c.Kill(t, idx)
	c.Restart(t, idx)
	coordtest.Eventually(t, 5*time.Second, func() bool {
		return cc.Set(ctx, "key-0", "again", 0).Err() == nil
	}, "SET after node restart")
}

func TestClusterACLUser(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 3, WithACLUser("app", "p4ss"))
	cc := c.ClusterClient(t)
	for i := range 10 {
		if err := cc.Set(t.Context(), fmt.Sprintf("key-%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET as ACL user: %v", err)
		}
	}
	opts := c.ClusterOptions()
	opts.Password = "wrong"
	opts.MaxRetries = -1
	bad := goredis.NewClusterClient(opts)
	defer bad.Close()
	if err := bad.Ping(t.Context()).Err(); err == nil {
		t.Fatal("PING with a wrong password succeeded")
	}
}
