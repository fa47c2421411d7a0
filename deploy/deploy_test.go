package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend"
	"github.com/cgn-bot/coord/cache"
	"github.com/cgn-bot/coord/health"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/middleware/metrics"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startWithConf starts redis-server on redis.conf with the port, dir and
// bind address overridden, and returns a client of it. The server is
// stopped (SIGTERM, then SIGKILL after 10s) at cleanup.
func startWithConf(t *testing.T) *goredis.Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not on PATH, which CI=true requires: %v", err)
		}
		t.Skipf("skipping: redis-server is not on PATH (apt-get install redis-server; under CI=true this fails): %v", err)
	}
	const attempts = 3
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		ctx, cancel := context.WithCancel(context.Background())
		var out coordtest.SyncBuffer
		cmd := exec.CommandContext(ctx, bin, "redis.conf",
			"--port", strconv.Itoa(port), "--dir", t.TempDir(), "--bind", "127.0.0.1")
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatalf("starting %s: %v", bin, err)
		}
		// exited is closed when the process has exited; waitErr is then set.
		exited := make(chan struct{})
		var waitErr error
		go func() {
			waitErr = cmd.Wait()
			close(exited)
		}()
		stop := func() {
			cancel()
			<-exited
		}
		client := goredis.NewClient(&goredis.Options{
			Addr:        net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			DialTimeout: time.Second, MaxRetries: -1,
		})
		err := waitPing(client, exited, &waitErr)
		if err == nil {
			t.Cleanup(func() {
				_ = client.Close()
				stop()
			})
			return client
		}
		_ = client.Close()
		stop()
		if attempt == attempts || !strings.Contains(out.String(), "Address already in use") {
			t.Fatalf("redis-server with deploy/redis.conf did not answer: %v\nserver output:\n%s", err, out.String())
		}
	}
}

// waitPing polls PING until it answers, the process exits, or 15s pass
// (a bound on a broken start, not a slow one).
func waitPing(c *goredis.Client, exited <-chan struct{}, waitErr *error) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.Join(errors.New("redis-server exited"), *waitErr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// TestRedisConf proves deploy/redis.conf is a valid Redis configuration
// with the settings coord depends on.
func TestRedisConf(t *testing.T) {
	c := startWithConf(t)
	ctx := t.Context()
	want := map[string]string{
		"maxmemory-policy":       "noeviction", // never evict a lock or a session
		"appendonly":             "yes",
		"appendfsync":            "everysec",
		"notify-keyspace-events": "",
		"maxmemory":              strconv.Itoa(512 << 20),
	}
	for key, v := range want {
		got, err := c.ConfigGet(ctx, key).Result()
		if err != nil {
			t.Fatalf("CONFIG GET %s: %v", key, err)
		}
		if got[key] != v {
			t.Errorf("CONFIG GET %s = %q, want %q", key, got[key], v)
		}
	}
	save, err := c.ConfigGet(ctx, "save").Result()
	if err != nil {
		t.Fatal(err)
	}
	if save["save"] != "900 1 300 10 60 10000" {
		t.Errorf("save = %q, want the Node design's snapshots", save["save"])
	}
	out, err := c.ConfigGet(ctx, "client-output-buffer-limit").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out["client-output-buffer-limit"], "pubsub 33554432 8388608 60") {
		t.Errorf("client-output-buffer-limit = %q, want the pubsub limit of redis.conf", out["client-output-buffer-limit"])
	}
	// A write works (noeviction only refuses writes when memory is full).
	if err := c.Set(ctx, "deploy-test", "1", time.Minute).Err(); err != nil {
		t.Errorf("SET: %v", err)
	}
}

// TestDashboardSeries checks that every series the Grafana dashboard
// queries is exported by the metrics middleware, so the dashboard does not
// drift from the code: it runs a decorated memory backend through leases,
// a failed acquire, invalidations and events, and a recorded near cache
// through a load, and looks for each name.
func TestDashboardSeries(t *testing.T) {
	raw, err := os.ReadFile("grafana/coord-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}

	ctx := t.Context()
	reg := prometheus.NewRegistry()
	var opener backend.Opener
	a, err := opener.Open(ctx, backend.Config{URL: "mem://dash", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	b, err := opener.Open(ctx, backend.Config{URL: "mem://dash", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	// A near cache, recorded through a Middleware that shares the
	// backends' metrics.
	m, err := metrics.New(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New[string](ctx, b.Invalidator(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop, err := m.Cache("dash", c)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if _, err := c.GetOrLoad(ctx, "k", func(context.Context, string) (string, error) { return "v", nil }); err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 4)
	sub, err := b.Invalidator().Subscribe(ctx, func(coord.Invalidation) { got <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	lock, err := a.Locker().Acquire(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Locker().Acquire(ctx, "job", coord.WithRetry(0, 0)); !errors.Is(err, coord.ErrNotAcquired) {
		t.Fatalf("second Acquire: %v, want ErrNotAcquired", err)
	}
	if err := lock.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Invalidator().Invalidate(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	if err := a.Events().Publish(ctx, "e", nil); err != nil {
		t.Fatal(err)
	}
	ssub, err := b.Streams().Consume(ctx, "s", "g", func(context.Context, coord.StreamEntry) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer ssub.Unsubscribe()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the invalidation was not delivered within 5s")
	}

	if _, err := a.RateLimiter().Allow(ctx, "k", coord.Limit{Name: "dash", Rate: 1, Period: time.Second}, 1); err != nil {
		t.Fatal(err)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	series := regexp.MustCompile(`\$\{namespace\}_([a-z_]+)`)
	checked := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range series.FindAllStringSubmatch(tg.Expr, -1) {
				name := "coord_" + m[1]
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
				if !have[name] && !have[base] {
					t.Errorf("panel %q queries %s, which the metrics middleware does not export", p.Title, name)
				}
				checked++
			}
		}
	}
	if checked == 0 {
		t.Error("the dashboard queries no ${namespace}_ series")
	}
}

// TestKubernetesProbes checks that the manifest probes the paths the
// health package serves, as docs/LOGGING.md recommends: /readyz only as
// the start-up gate, /livez for liveness and readiness, so that a Redis
// outage does not take every pod out of the Service at once.
func TestKubernetesProbes(t *testing.T) {
	raw, err := os.ReadFile("kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	probe := regexp.MustCompile(`(?m)^\s+(startupProbe|livenessProbe|readinessProbe):\s*\n\s+httpGet:\s*\n\s+path:\s*(\S+)`)
	got := map[string]string{}
	for _, m := range probe.FindAllStringSubmatch(string(raw), -1) {
		got[m[1]] = m[2]
	}
	want := map[string]string{
		"startupProbe":   health.PathReadiness,
		"livenessProbe":  health.PathLiveness,
		"readinessProbe": health.PathLiveness,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s path %q; want %q", k, got[k], v)
		}
	}
}
