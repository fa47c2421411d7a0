package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// clusterTimeout bounds building a cluster and its recovery after a node
// restart.
const clusterTimeout = 30 * time.Second

// Cluster is a Redis Cluster of masters only (no replicas) on 127.0.0.1,
// owned by a test. Its methods are safe for concurrent use.
type Cluster struct {
	nodes []*Server
}

// StartCluster starts masters redis-server processes with cluster mode on
// (each with its own temp dir and nodes.conf), joins them with
// `redis-cli --cluster create ... --cluster-replicas 0`, and waits until
// every node reports cluster_state:ok with all 16384 slots assigned.
// masters must be at least 3. Options apply to every node; [WithTLS] is not
// supported. The nodes are stopped at cleanup. When redis-server or
// redis-cli is missing or the cluster cannot form, it fails the test under
// CI=true and skips it otherwise.
func StartCluster(tb testing.TB, masters int, opts ...Option) *Cluster {
	tb.Helper()
	if masters < 3 {
		tb.Fatalf("redistest: StartCluster(%d): a cluster needs at least 3 masters", masters)
	}
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.tls {
		tb.Fatal("redistest: StartCluster does not support WithTLS")
	}
	if err := Available(); err != nil {
		unavailable(tb, err.Error())
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		unavailable(tb, "redis-cli not found on PATH (it comes with `apt-get install redis-server`): "+err.Error())
	}
	c := &Cluster{}
	for i := range masters {
		s, err := newServer(tb, cfg, fmt.Sprintf("cluster-%d", i), true, []string{
			"cluster-enabled yes",
			"cluster-config-file nodes.conf",
			"cluster-node-timeout 2000",
		})
		if err != nil {
			unavailable(tb, fmt.Sprintf("cluster node %d: %v", i, err))
		}
		c.nodes = append(c.nodes, s)
	}
	if err := c.create(tb, cli); err != nil {
		unavailable(tb, err.Error())
	}
	return c
}

// create joins the nodes with redis-cli and waits for the cluster to be ok.
func (c *Cluster) create(tb testing.TB, cli string) error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cfg := c.nodes[0].cfg
	if cfg.user != "" {
		args = append(args, "--user", cfg.user)
	}
	cmd := exec.CommandContext(ctx, cli, args...)
	if cfg.password != "" {
		// Through the environment, so it is not on a command line.
		cmd.Env = append(cmd.Environ(), "REDISCLI_AUTH="+cfg.password)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("redistest: redis-cli --cluster create: %w; output:\n%s", err, tail(string(out), logTailLines))
	}
	return c.waitOK(ctx)
}

// waitOK polls CLUSTER INFO on every node until each reports
// cluster_state:ok, all slots ok and every node known.
func (c *Cluster) waitOK(ctx context.Context) error {
	for {
		err := c.check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redistest: cluster not ok: %w", err)
		case <-time.After(pollInterval):
		}
	}
}

// check returns nil when every node reports a healthy, complete cluster.
func (c *Cluster) check(ctx context.Context) error {
	for _, s := range c.nodes {
		v, err := s.DoContext(ctx, "CLUSTER", "INFO")
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", s.Addr(), err)
		}
		str, _ := v.(string)
		info := parseInfo(str)
		want := map[string]string{
			"cluster_state":          "ok",
			"cluster_slots_assigned": "16384",
			"cluster_slots_ok":       "16384",
			"cluster_known_nodes":    strconv.Itoa(len(c.nodes)),
		}
		for k, w := range want {
			if info[k] != w {
				return fmt.Errorf("%s: %s is %q, want %q", s.Addr(), k, info[k], w)
			}
		}
	}
	return nil
}

// parseInfo reads "key:value" lines of an INFO-style reply.
func parseInfo(s string) map[string]string {
	m := make(map[string]string)
	for line := range strings.SplitSeq(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			m[k] = v
		}
	}
	return m
}

// Addrs returns the nodes' addresses ("127.0.0.1:port"), in node order.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Nodes returns the cluster's servers, in node order, for per-node faults
// ([Server.Pause], [Server.KillPubSubClients], ...).
func (c *Cluster) Nodes() []*Server {
	return append([]*Server(nil), c.nodes...)
}

// ClusterOptions returns new go-redis cluster options with every node's
// address and the credentials filled in.
func (c *Cluster) ClusterOptions() *goredis.ClusterOptions {
	cfg := c.nodes[0].cfg
	return &goredis.ClusterOptions{
		Addrs:    c.Addrs(),
		Username: cfg.user,
		Password: cfg.password,
	}
}

// ClusterClient returns a new go-redis cluster client, closed at cleanup.
func (c *Cluster) ClusterClient(tb testing.TB) *goredis.ClusterClient {
	tb.Helper()
	cc := goredis.NewClusterClient(c.ClusterOptions())
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

// Kill sends SIGKILL to node i (see [Server.Kill]). Its slots stay
// unserved until [Cluster.Restart]; after cluster-node-timeout (2s) the
// other nodes mark it failed and report cluster_state:fail.
func (c *Cluster) Kill(tb testing.TB, i int) {
	tb.Helper()
	c.nodes[i].Kill(tb)
}

// Restart starts node i again on the same port with its nodes.conf (so it
// keeps its ID and slots, with an empty data set) and waits until every node
// reports cluster_state:ok again. That takes about 2s: a restarted master
// waits that long (CLUSTER_WRITABLE_DELAY in redis-server) before it
// reports ok.
func (c *Cluster) Restart(tb testing.TB, i int) {
	tb.Helper()
	c.nodes[i].Restart(tb)
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if err := c.waitOK(ctx); err != nil {
		tb.Fatal(err)
	}
}

// WaitOK waits until every node reports cluster_state:ok with all slots
// and nodes known, failing the test after 30s.
func (c *Cluster) WaitOK(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if err := c.waitOK(ctx); err != nil {
		tb.Fatal(err)
	}
}

// FlushAll empties every node (FLUSHALL on each).
func (c *Cluster) FlushAll(tb testing.TB) {
	tb.Helper()
	for _, s := range c.nodes {
		s.FlushAll(tb)
	}
}
