package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Sentinel settings: short enough for tests, long enough not to trip on a
// loaded machine.
const (
	sentinelMasterName   = "mymaster"
	sentinelQuorum       = 2
	sentinelDownAfter    = 1000 // ms
	sentinelFailoverTime = 5000 // ms
	sentinelTimeout      = 30 * time.Second
)

// Sentinel is a Sentinel group on 127.0.0.1 owned by a test: a master, a
// replica and three sentinels (quorum 2, down-after-milliseconds 1000,
// failover-timeout 5000). Its methods are safe for concurrent use.
type Sentinel struct {
	data      []*Server // the two data nodes, in start order
	sentinels []*Server
}

// StartSentinel starts one master, one replica and three sentinels
// monitoring them as [Sentinel.MasterName], and waits until the replica is
// in sync and every sentinel knows the replica and the other two
// sentinels. Options apply to the data nodes ([WithPassword] and
// [WithACLUser] are passed to the sentinels as auth-pass and auth-user);
// [WithTLS] is not supported. Everything is stopped at cleanup. When
// redis-server is missing or the group cannot form, it fails the test under
// CI=true and skips it otherwise.
func StartSentinel(tb testing.TB, opts ...Option) *Sentinel {
	tb.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.tls {
		tb.Fatal("redistest: StartSentinel does not support WithTLS")
	}
	if err := Available(); err != nil {
		unavailable(tb, err.Error())
	}
	g := &Sentinel{}
	master, err := newServer(tb, cfg, "sentinel-data-0", false, nil)
	if err != nil {
		unavailable(tb, "master: "+err.Error())
	}
	replica, err := newServer(tb, cfg, "sentinel-data-1", false, []string{
		fmt.Sprintf("replicaof 127.0.0.1 %d", master.Port()),
	})
	if err != nil {
		unavailable(tb, "replica: "+err.Error())
	}
	g.data = []*Server{master, replica}
	ctx, cancel := context.WithTimeout(context.Background(), sentinelTimeout)
	defer cancel()
	if err := waitReplicated(ctx, master, replica); err != nil {
		unavailable(tb, err.Error())
	}
	conf := []string{
		"sentinel resolve-hostnames no",
		fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", sentinelMasterName, master.Port(), sentinelQuorum),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", sentinelMasterName, sentinelDownAfter),
		fmt.Sprintf("sentinel failover-timeout %s %d", sentinelMasterName, sentinelFailoverTime),
		fmt.Sprintf("sentinel parallel-syncs %s 1", sentinelMasterName),
	}
	if cfg.user != "" {
		conf = append(conf, fmt.Sprintf("sentinel auth-user %s %s", sentinelMasterName, cfg.user))
	}
	if cfg.password != "" {
		conf = append(conf, fmt.Sprintf("sentinel auth-pass %s %q", sentinelMasterName, cfg.password))
	}
	for i := range 3 {
		s, err := newServer(tb, config{args: []string{"--sentinel"}}, fmt.Sprintf("sentinel-%d", i), false, conf)
		if err != nil {
			unavailable(tb, fmt.Sprintf("sentinel %d: %v", i, err))
		}
		g.sentinels = append(g.sentinels, s)
		// Faster hello messages and INFO polls: discovery, and turning the
		// old master into a replica after a failover, take about 1s
		// instead of 10s. A short TILT period, so a stalled machine does
		// not silence the sentinels for 30s. Redis before 7.0 has no
		// SENTINEL DEBUG and is just slower.
		_, _ = s.DoContext(ctx, "SENTINEL", "DEBUG",
			"info-period", "500", "publish-period", "250", "tilt-period", "5000")
	}
	if err := waitFor(ctx, func() error { return g.checkSentinels(ctx, master.Addr()) }); err != nil {
		unavailable(tb, "sentinels never agreed: "+err.Error())
	}
	return g
}

// waitFor polls check until it returns nil or ctx ends.
func waitFor(ctx context.Context, check func() error) error {
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pollInterval):
		}
	}
}

// syncMarkerKey is written and deleted by the harness to prove that
// replication streams.
const syncMarkerKey = "redistest:sync-marker"

// waitReplicated waits until replica is in sync with master and a write on
// master reaches it, then deletes the marker it wrote. A link that is up is
// not enough: after a diskless full sync the master streams writes only
// after the replica's first REPLCONF ACK, up to a second later, and a
// failover before that loses them.
func waitReplicated(ctx context.Context, master, replica *Server) error {
	err := waitFor(ctx, func() error { return replicaInSync(ctx, replica) })
	if err != nil {
		return fmt.Errorf("redistest: replica %s never synced with master %s: %w", replica.Addr(), master.Addr(), err)
	}
	marker := strconv.FormatInt(time.Now().UnixNano(), 10)
	if _, err := master.DoContext(ctx, "SET", syncMarkerKey, marker); err != nil {
		return fmt.Errorf("redistest: master %s: SET: %w", master.Addr(), err)
	}
	err = waitFor(ctx, func() error {
		v, err := replica.DoContext(ctx, "GET", syncMarkerKey)
		if err != nil {
			return err
		}
		if v != marker {
			return fmt.Errorf("replica %s has not received a write to master %s", replica.Addr(), master.Addr())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	if _, err := master.DoContext(ctx, "DEL", syncMarkerKey); err != nil {
		return fmt.Errorf("redistest: master %s: DEL: %w", master.Addr(), err)
	}
	return nil
}

// replicaInSync returns nil when s is a replica whose link to its master is up.
func replicaInSync(ctx context.Context, s *Server) error {
	v, err := s.DoContext(ctx, "INFO", "replication")
	if err != nil {
		return err
	}
	str, _ := v.(string)
	info := parseInfo(str)
	if info["role"] != "slave" || info["master_link_status"] != "up" {
		return fmt.Errorf("%s: role %q, master_link_status %q", s.Addr(), info["role"], info["master_link_status"])
	}
	return nil
}

// checkSentinels returns nil when every sentinel reports masterAddr as the
// master, sees it up with one replica up, and knows the other sentinels.
func (g *Sentinel) checkSentinels(ctx context.Context, masterAddr string) error {
	for _, s := range g.sentinels {
		v, err := s.DoContext(ctx, "SENTINEL", "MASTER", sentinelMasterName)
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", s.Addr(), err)
		}
		m := pairs(v)
		addr := net.JoinHostPort(m["ip"], m["port"])
		switch {
		case addr != masterAddr:
			return fmt.Errorf("sentinel %s: master is %s, want %s", s.Addr(), addr, masterAddr)
		case m["flags"] != "master":
			return fmt.Errorf("sentinel %s: master flags %q", s.Addr(), m["flags"])
		case m["num-slaves"] != "1":
			return fmt.Errorf("sentinel %s: num-slaves %q, want 1", s.Addr(), m["num-slaves"])
		case m["num-other-sentinels"] != strconv.Itoa(len(g.sentinels)-1):
			return fmt.Errorf("sentinel %s: num-other-sentinels %q", s.Addr(), m["num-other-sentinels"])
		}
		v, err = s.DoContext(ctx, "SENTINEL", "REPLICAS", sentinelMasterName)
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", s.Addr(), err)
		}
		reps, _ := v.([]any)
		for _, r := range reps {
			rm := pairs(r)
			if rm["flags"] != "slave" || rm["master-link-status"] != "ok" {
				return fmt.Errorf("sentinel %s: replica %s:%s flags %q link %q", s.Addr(), rm["ip"], rm["port"], rm["flags"], rm["master-link-status"])
			}
		}
	}
	return nil
}

// pairs turns a flat [k1 v1 k2 v2 ...] reply into a map.
func pairs(v any) map[string]string {
	a, _ := v.([]any)
	m := make(map[string]string, len(a)/2)
	for i := 0; i+1 < len(a); i += 2 {
		k, _ := a[i].(string)
		val, _ := a[i+1].(string)
		m[k] = val
	}
	return m
}

// MasterName returns the name the sentinels monitor the master under.
func (g *Sentinel) MasterName() string { return sentinelMasterName }

// SentinelAddrs returns the three sentinels' addresses.
func (g *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(g.sentinels))
	for i, s := range g.sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Sentinels returns the sentinel processes, for faults.
func (g *Sentinel) Sentinels() []*Server { return append([]*Server(nil), g.sentinels...) }

// DataNodes returns the two data servers in start order: the initial master
// first. Their roles swap with each failover; see [Sentinel.Master].
func (g *Sentinel) DataNodes() []*Server { return append([]*Server(nil), g.data...) }

// FailoverOptions returns new go-redis failover options for the group,
// with the credentials of the data nodes.
func (g *Sentinel) FailoverOptions() *goredis.FailoverOptions {
	cfg := g.data[0].cfg
	return &goredis.FailoverOptions{
		MasterName:    sentinelMasterName,
		SentinelAddrs: g.SentinelAddrs(),
		Username:      cfg.user,
		Password:      cfg.password,
	}
}

// FailoverClient returns a new go-redis failover client of the group's
// master, closed at cleanup.
func (g *Sentinel) FailoverClient(tb testing.TB) *goredis.Client {
	tb.Helper()
	c := goredis.NewFailoverClient(g.FailoverOptions())
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// masterAddr asks one sentinel for the master's address.
func (g *Sentinel) masterAddr(ctx context.Context, s *Server) (string, error) {
	v, err := s.DoContext(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", sentinelMasterName)
	if err != nil {
		return "", err
	}
	a, _ := v.([]any)
	if len(a) != 2 {
		return "", fmt.Errorf("sentinel %s: GET-MASTER-ADDR-BY-NAME: unexpected reply %v", s.Addr(), v)
	}
	host, _ := a[0].(string)
	port, _ := a[1].(string)
	return net.JoinHostPort(host, port), nil
}

// Master returns the data node the first sentinel reports as master.
func (g *Sentinel) Master(tb testing.TB) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*adminTimeout)
	defer cancel()
	addr, err := g.masterAddr(ctx, g.sentinels[0])
	if err != nil {
		tb.Fatal(err)
	}
	s := g.node(addr)
	if s == nil {
		tb.Fatalf("redistest: sentinel reports master %s, which is not a data node", addr)
	}
	return s
}

// Failover runs SENTINEL FAILOVER and waits until every sentinel reports
// the former replica as master, that node accepts writes, and the former
// master has become its replica and is in sync (so another Failover can
// follow). It takes about 3s and fails the test after 30s.
func (g *Sentinel) Failover(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sentinelTimeout)
	defer cancel()
	if err := g.failover(ctx); err != nil {
		tb.Fatal(err)
	}
}

func (g *Sentinel) failover(ctx context.Context) error {
	oldAddr, err := g.masterAddr(ctx, g.sentinels[0])
	if err != nil {
		return err
	}
	newMaster := g.other(oldAddr)
	if newMaster == nil {
		return fmt.Errorf("redistest: sentinel reports master %s, which is not a data node", oldAddr)
	}
	if _, err := g.sentinels[0].DoContext(ctx, "SENTINEL", "FAILOVER", sentinelMasterName); err != nil {
		return fmt.Errorf("redistest: SENTINEL FAILOVER: %w", err)
	}
	if err := g.waitHealthy(ctx, newMaster); err != nil {
		return fmt.Errorf("redistest: failover from %s to %s: %w", oldAddr, newMaster.Addr(), err)
	}
	return nil
}

// node returns the data node at addr, or nil.
func (g *Sentinel) node(addr string) *Server {
	for _, s := range g.data {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// other returns the data node whose address is not addr, or nil when addr
// is not a data node.
func (g *Sentinel) other(addr string) *Server {
	switch addr {
	case g.data[0].Addr():
		return g.data[1]
	case g.data[1].Addr():
		return g.data[0]
	}
	return nil
}

// WaitForNewMaster waits until every sentinel reports a master other than
// old (after old was killed, paused or stopped, which makes the sentinels
// fail over on their own after down-after-milliseconds) and that master
// accepts writes, and returns it. It does not wait for old to come back;
// after old is restarted, [Sentinel.WaitHealthy] waits for it to become a
// replica. It fails the test after 30s.
func (g *Sentinel) WaitForNewMaster(tb testing.TB, old *Server) *Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sentinelTimeout)
	defer cancel()
	newMaster := g.other(old.Addr())
	if newMaster == nil {
		tb.Fatalf("redistest: %s is not a data node of the group", old.Addr())
	}
	err := waitFor(ctx, func() error {
		if err := g.sentinelsReport(ctx, newMaster.Addr()); err != nil {
			return err
		}
		_, err := newMaster.DoContext(ctx, "SET", syncMarkerKey, "new-master")
		if err != nil {
			return fmt.Errorf("new master %s: SET: %w", newMaster.Addr(), err)
		}
		_, err = newMaster.DoContext(ctx, "DEL", syncMarkerKey)
		return err
	})
	if err != nil {
		tb.Fatalf("redistest: waiting for a master other than %s: %v", old.Addr(), errors.Join(err, ctx.Err()))
	}
	return newMaster
}

// WaitHealthy waits until every sentinel agrees on the master, the other
// data node is its in-sync replica receiving writes, and every sentinel
// sees that replica and the other sentinels; then another [Sentinel.Failover]
// can follow. It fails the test after 30s.
func (g *Sentinel) WaitHealthy(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sentinelTimeout)
	defer cancel()
	addr, err := g.masterAddr(ctx, g.sentinels[0])
	if err != nil {
		tb.Fatal(err)
	}
	master := g.node(addr)
	if master == nil {
		tb.Fatalf("redistest: sentinel reports master %s, which is not a data node", addr)
	}
	if err := g.waitHealthy(ctx, master); err != nil {
		tb.Fatal(err)
	}
}

// waitHealthy waits until the group is healthy with master as its master.
func (g *Sentinel) waitHealthy(ctx context.Context, master *Server) error {
	replica := g.other(master.Addr())
	err := waitFor(ctx, func() error {
		if err := g.sentinelsReport(ctx, master.Addr()); err != nil {
			return err
		}
		if err := replicaInSync(ctx, replica); err != nil {
			return fmt.Errorf("%s not yet a replica: %w", replica.Addr(), err)
		}
		return g.checkSentinels(ctx, master.Addr())
	})
	if err != nil {
		return fmt.Errorf("redistest: sentinel group not healthy: %w", errors.Join(err, ctx.Err()))
	}
	// The master takes writes and streams them to the replica.
	return waitReplicated(ctx, master, replica)
}

// sentinelsReport returns nil when every sentinel reports addr as master.
func (g *Sentinel) sentinelsReport(ctx context.Context, addr string) error {
	for _, s := range g.sentinels {
		got, err := g.masterAddr(ctx, s)
		if err != nil {
			return err
		}
		if got != addr {
			return fmt.Errorf("sentinel %s reports master %s, want %s", s.Addr(), got, addr)
		}
	}
	return nil
}

// sentinelEvents are the events a sentinel logs when its view of the
// master changes: subjectively or objectively down (or back), a failover's
// steps, a switch of master, and TILT mode (its timer stalled: it stops
// acting for a while).
var sentinelEvents = []string{
	"+sdown", "-sdown", "+odown", "-odown", "+try-failover", "+elected-leader",
	"+failover-end", "+switch-master", "+tilt", "-tilt",
}

// redisLogTime is the time layout of a redis-server log line (after the
// "pid:role " prefix).
const redisLogTime = "02 Jan 2006 15:04:05.000"

// Events returns the lines the sentinels logged at or after since that
// record a change of their view of the master (+sdown, +odown, a
// failover, +switch-master, +tilt and their ends), each prefixed with the
// sentinel's address. A test that saw leases or connections behave
// oddly on the group logs them: a failover nobody asked for (the master
// stalled past down-after-milliseconds on a loaded machine) explains it.
func (g *Sentinel) Events(since time.Time) []string {
	var out []string
	for _, s := range g.sentinels {
		b, err := os.ReadFile(s.logPath)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !isSentinelEvent(line) {
				continue
			}
			if at, ok := logLineTime(line); ok && at.Before(since) {
				continue
			}
			out = append(out, s.Addr()+" "+line)
		}
	}
	return out
}

// isSentinelEvent reports whether a log line records one of sentinelEvents.
func isSentinelEvent(line string) bool {
	for _, ev := range sentinelEvents {
		if strings.Contains(line, " "+ev+" ") {
			return true
		}
	}
	return false
}

// logLineTime returns the time a redis-server log line was written
// ("1234:X 06 Dec 2026 14:22:12.345 # ..."), read in local time as the
// server writes it.
func logLineTime(line string) (time.Time, bool) {
	f := strings.Fields(line)
	if len(f) < 5 {
		return time.Time{}, false
	}
	at, err := time.ParseInLocation(redisLogTime, strings.Join(f[1:5], " "), time.Local)
	return at, err == nil
}
