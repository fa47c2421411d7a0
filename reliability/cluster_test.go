package reliability

import (
	"fmt"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/conformance"
	"github.com/cgn-bot/coord/internal/redistest"
)

// clusterHarness runs conformance cases on one Redis Cluster shared by
// every case of the test, each case under its own key and channel prefix.
// Every instance has its own cluster client with a unique client name, so
// that a cut closes only that instance's subscriber connection, whichever
// node it went to.
type clusterHarness struct {
	cl     *redistest.Cluster
	prefix string

	mu    sync.Mutex
	names map[coord.Backend]string
}

var (
	_ conformance.SubscriptionCutter = (*clusterHarness)(nil)
	_ conformance.ForeignPublisher   = (*clusterHarness)(nil)
)

func newClusterHarness(cl *redistest.Cluster) *clusterHarness {
	return &clusterHarness{cl: cl, prefix: uniq("k") + ":", names: map[coord.Backend]string{}}
}

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

func (h *clusterHarness) NewInstance(t *testing.T) coord.Backend {
	n := clusterNode(t, h.cl, h.prefix, &coordredis.Options{HealthInterval: time.Second})
	h.mu.Lock()
	h.names[n] = n.name
	h.mu.Unlock()
	return n
}

func (h *clusterHarness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{CutSubscription: true, ForeignPublish: true}
}

// PublishRaw publishes on one node: classic PUBLISH reaches the
// subscribers of every node of a cluster.
func (h *clusterHarness) PublishRaw(t *testing.T, channel string, payload []byte) {
	h.cl.Nodes()[0].Do(t, "PUBLISH", channelName(h.prefix, channel), payload)
}

// CutSubscription closes the instance's pubsub connection on whichever
// node it is.
func (h *clusterHarness) CutSubscription(t *testing.T, instance coord.Backend) {
	h.mu.Lock()
	name := h.names[instance]
	h.mu.Unlock()
	killed := 0
	for _, s := range h.cl.Nodes() {
		killed += killClientsNamed(t, s, name)
	}
	if killed == 0 {
		t.Fatalf("no subscriber connection named %s on any node", name)
	}
}

// TestCluster starts one three-master cluster and runs on it the whole
// conformance suite and the exclusion checker.
func TestCluster(t *testing.T) {
	start := time.Now()
	cl := redistest.StartCluster(t, 3)
	t.Logf("cluster of 3 masters up in %v", time.Since(start).Round(time.Millisecond))

	t.Run("Conformance", func(t *testing.T) {
		conformance.Run(t, func(t *testing.T) conformance.Harness { return newClusterHarness(cl) })
	})
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
			var key string
			for k := range n.Scan(ctx, "*lock:{"+res+"}") {
				key = k
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
