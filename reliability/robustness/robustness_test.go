package robustness

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

var (
	flagDuration  = flag.Duration("robustness.duration", 0, "run the workload this long with a random seed (unless -robustness.seed is set) and every fault kind, repeated")
	flagSeed      = flag.Int64("robustness.seed", 0, "seed of the fault schedule and workload (0: fixed in CI mode, random with -robustness.duration)")
	flagDeploy    = flag.String("robustness.deployment", "", "single (default), cluster (three masters) or sentinel (master, replica, three sentinels), or COORD_ROBUSTNESS_DEPLOYMENT")
	flagAOF       = flag.Bool("robustness.aof", false, "single server: run with appendonly yes (fsync every second), and restore from an older copy of the AOF instead of an RDB snapshot; or COORD_ROBUSTNESS_AOF=1")
	flagFaults    = flag.String("robustness.faults", "", "comma-separated fault kinds to draw from (default: every kind of the deployment), or COORD_ROBUSTNESS_FAULTS")
	flagMigrate   = flag.String("robustness.migrate", "", "Cluster: comma-separated lease shapes whose slots migrate-slot moves: lock, rw, sem, elect, stream (default: all), or COORD_ROBUSTNESS_MIGRATE")
	flagStaleness = flag.Duration("robustness.staleness", 0, "how long after an invalidation a near cache may serve the older value (default 2.5s, the window docs/FAILURES.md states, or COORD_ROBUSTNESS_STALENESS)")
)

// ciSeed is the fixed seed of the CI schedule. With Schedule as it is, it
// orders the faults so that each known defect shows before a lease made
// immortal by a failed release (one of them) can hide the others:
// restore, blackhole of the cache-only worker, oom, then the rest (and
// it pauses a worker that holds leases).
const ciSeed = 20294

// semLimit is the permits of the workload's semaphore: four loops
// contend for them.
const semLimit = 2

// claimAfter is the stream consumers' claim time: shorter than a paused
// worker's stop, so its entries go to its sibling, and long enough that
// the other faults rarely move an entry.
const claimAfter = 2 * time.Second

// leaseTTL is the workers' lease TTL. Their clients time out a command
// after 1s, so a server paused for less than a TTL fails releases while
// renewals get through after it.
const leaseTTL = 3 * time.Second

func staleness(tb testing.TB) time.Duration {
	if *flagStaleness > 0 {
		return *flagStaleness
	}
	if s := os.Getenv("COORD_ROBUSTNESS_STALENESS"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			tb.Fatalf("COORD_ROBUSTNESS_STALENESS=%q: %v", s, err)
		}
		return d
	}
	return 2500 * time.Millisecond // the worst-case staleness docs/FAILURES.md states
}

// TestRobustness runs the workload on a single redis-server under every
// fault kind, in an order and with durations drawn from a fixed seed (or
// as the flags say), and fails on any checker's finding.
// COORD_ROBUSTNESS=off skips it.
func TestRobustness(t *testing.T) {
	if os.Getenv("COORD_ROBUSTNESS") == "off" {
		t.Skip("COORD_ROBUSTNESS=off")
	}
	seed, total := int64(ciSeed), time.Duration(0)
	if *flagDuration > 0 {
		total = *flagDuration
		seed = time.Now().UnixNano() % 1_000_000
	}
	if *flagSeed != 0 {
		seed = *flagSeed
	}
	h := newHarness(t, seed, deployment(t))
	kinds := AllFaults
	switch {
	case h.sentinel != nil:
		kinds = SentinelFaults
	case h.cluster != nil:
		kinds = ClusterFaults
	}
	only := cmp.Or(*flagFaults, os.Getenv("COORD_ROBUSTNESS_FAULTS"))
	if only != "" {
		kinds = strings.Split(only, ",")
		for _, k := range kinds {
			if !slices.Contains(ClusterFaults, k) && !slices.Contains(SentinelFaults, k) && !slices.Contains(OptInFaults, k) {
				t.Fatalf("unknown fault kind %q", k)
			}
		}
	}
	sched := Schedule(seed, h.timing(), kinds, total)
	if only == "" && total == 0 {
		sched = withLeaderKill(sched)
	}
	findings := h.run(sched)
	if len(findings) > 0 {
		t.Errorf("robustness: %d checker(s) fired; seed %d (replay: go test ./reliability/robustness/ -run TestRobustness -robustness.seed=%d)\nschedule:\n%s%s",
			len(findings), seed, seed, FormatSchedule(sched), formatFindings(findings))
	}
}

// withLeaderKill appends to the fixed schedule one kill-worker, 2.5s after
// its last fault, lasting 1.5s: the election's leader is killed and
// restarted. It comes last so that the seeded order before it, and what
// it was chosen for, stay as they are.
func withLeaderKill(sched []Fault) []Fault {
	at := time.Second
	if n := len(sched); n > 0 {
		at = sched[n-1].At + sched[n-1].Dur + 2500*time.Millisecond
	}
	return append(sched, Fault{Kind: FaultKillWorker, At: at, Dur: 1500 * time.Millisecond})
}

// catches are the single-fault schedules that find the known defects,
// and the checker each one must fire while the defect is present.
var catches = []struct {
	name    string
	fault   string
	checker string
}{
	{"fence-after-restore", FaultRestore, CheckFence},
	{"immortal-after-failed-release", FaultPauseWrites, CheckImmortal},
	{"release-under-oom", FaultOOM, CheckRelease},
	{"stale-near-cache", FaultBlackhole, CheckStale},
}

// TestCatches demonstrates that the harness catches each known defect:
// one fault, and the named checker must fire. It runs when
// COORD_ROBUSTNESS_CATCH is set ("1" or "all" for every case, or a
// comma-separated list of case names); once a defect is fixed its case
// fails, which is the sign to retire it.
func TestCatches(t *testing.T) {
	want := os.Getenv("COORD_ROBUSTNESS_CATCH")
	if want == "" {
		t.Skip("set COORD_ROBUSTNESS_CATCH=1 to show which checker catches each known defect")
	}
	seed := int64(ciSeed)
	if *flagSeed != 0 {
		seed = *flagSeed
	}
	for _, c := range catches {
		if want != "1" && want != "all" && !strings.Contains(","+want+",", ","+c.name+",") {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, seed, deploySingle)
			sched := Schedule(seed, h.timing(), []string{c.fault}, 0)
			if c.fault == FaultBlackhole {
				sched[0].Target = cacheOnlyWorker // see WorkerConfig.CacheOnly
			}
			findings := h.run(sched)
			var fired []string
			caught := false
			for _, f := range findings {
				fired = append(fired, f.Checker)
				caught = caught || f.Checker == c.checker
			}
			t.Logf("seed %d, schedule:\n%scheckers fired: %v\n%s", seed, FormatSchedule(sched), fired, formatFindings(findings))
			if !caught {
				t.Errorf("checker %s did not fire (fired: %v)", c.checker, fired)
			}
		})
	}
}

func formatFindings(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	return b.String()
}

// Deployments.
const (
	deploySingle   = "single"
	deployCluster  = "cluster"
	deploySentinel = "sentinel"
)

func deployment(tb testing.TB) string {
	d := *flagDeploy
	if d == "" {
		d = os.Getenv("COORD_ROBUSTNESS_DEPLOYMENT")
	}
	switch d {
	case "", deploySingle:
		return deploySingle
	case deployCluster, deploySentinel:
		return d
	}
	tb.Fatalf("unknown deployment %q (single, cluster or sentinel)", d)
	return ""
}

// harness is one deployment, its workers and the checking store.
type harness struct {
	t        *testing.T
	seed     int64
	dir      string
	nodes    []*redistest.Server
	cluster  *redistest.Cluster  // nil unless a Cluster
	sentinel *redistest.Sentinel // nil unless a Sentinel group
	aof      bool                // a single server with appendonly yes
	store    *Store
	proxies  [][]*Proxy // per worker, per node
	workers  []*workerProc
	wcfgs    []WorkerConfig // each worker's configuration, to restart it
	admin    *coordredis.Backend
	cfg      WorkerConfig
	stale    time.Duration
	// migrations are the slots a migrate-slot may move (a Cluster only),
	// indexed by the fault's Target.
	migrations []migration

	// Filled while faults run.
	mu       sync.Mutex
	network  []Window
	dataLoss []int64
	lossy    []Window // see CheckConfig.Lossy
	oom      []Window
	paused   []Window
	killed   []Window
	notes    []string
	bin      string // the worker binary
}

const numWorkers = 3

// cacheOnlyWorker is the worker that takes no leases.
const cacheOnlyWorker = numWorkers - 1

func newHarness(t *testing.T, seed int64, deploy string) *harness {
	t.Helper()
	h := &harness{t: t, seed: seed, dir: keptDir(t), stale: staleness(t)}
	var client goredis.UniversalClient
	if deploy == deployCluster {
		h.cluster = redistest.StartCluster(t, 3)
		h.nodes = h.cluster.Nodes()
		o := h.cluster.ClusterOptions()
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.DisableIdentity = time.Second, 2*time.Second, 2*time.Second, true
		client = goredis.NewClusterClient(o)
	} else if deploy == deploySentinel {
		h.sentinel = redistest.StartSentinel(t)
		h.nodes = h.sentinel.DataNodes()
		o := h.sentinel.FailoverOptions()
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.DisableIdentity = time.Second, 2*time.Second, 2*time.Second, true
		client = goredis.NewFailoverClient(o)
	} else {
		var opts []redistest.Option
		if *flagAOF || os.Getenv("COORD_ROBUSTNESS_AOF") != "" {
			h.aof = true
			opts = append(opts, redistest.WithArgs("--appendonly", "yes", "--appendfsync", "everysec"))
		}
		srv := redistest.Start(t, opts...)
		h.nodes = []*redistest.Server{srv}
		client = goredis.NewClient(&goredis.Options{Addr: srv.Addr(), DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, DisableIdentity: true})
	}
	t.Cleanup(func() { _ = client.Close() }) // after the Backend's Close, registered below
	bin := buildWorker(t)
	h.bin = bin
	store, err := NewStore()
	if err != nil {
		t.Fatal(err)
	}
	h.store = store
	t.Cleanup(func() { _ = store.Close() })

	prefix := fmt.Sprintf("rob%d:", seed)
	admin, err := coordredis.New(client, &coordredis.Options{Prefix: prefix})
	if err != nil {
		_ = client.Close()
		t.Fatal(err)
	}
	h.admin = admin
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = admin.Close(ctx)
		_ = client.Close()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.cfg = WorkerConfig{
		Seed: seed, StoreURL: store.URL(), Prefix: prefix, LeaseTTL: leaseTTL,
		Resources: []string{"r0", "r1"}, Fields: []string{"a", "b", "c"},
		Users: []string{"u0", "u1", "u2"}, Keys: []string{"k0", "k1", "k2", "k3"},
		CacheMaxTTL: time.Minute,
		RWResources: []string{"rw0", "rw1"}, Semaphores: []string{"s0"}, SemLimit: semLimit, Election: "lead",
		Streams: true, ClaimAfter: claimAfter, DrainTimeout: 15 * time.Second,
	}
	if h.cluster != nil {
		// Enough resources that every master holds some lease keys.
		h.cfg.Resources = []string{"r0", "r1", "r2", "r3", "r4", "r5"}
		h.migrations = migrations(t, h.cfg)
	}
	for i := 0; i < 4; i++ {
		s, err := admin.Sessions().Create(ctx, "shared", nil)
		if err != nil {
			t.Fatal(err)
		}
		h.cfg.Sessions = append(h.cfg.Sessions, s.ID)
	}
	for i := 0; i < numWorkers; i++ {
		cfg := h.cfg
		cfg.CacheOnly = i == cacheOnlyWorker
		cfg.Cluster = h.cluster != nil
		cfg.Nodes = map[string]string{}
		var ps []*Proxy
		nodes := h.nodes
		if h.sentinel != nil {
			cfg.MasterName = h.sentinel.MasterName()
			cfg.Sentinels = h.sentinel.SentinelAddrs()
			nodes = append(nodes, h.sentinel.Sentinels()...)
		}
		for _, n := range nodes {
			p, err := NewProxy(n.Addr())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close() })
			ps = append(ps, p)
			cfg.Nodes[n.Addr()] = p.Addr()
		}
		h.proxies = append(h.proxies, ps)
		h.workers = append(h.workers, startWorker(t, bin, h.dir, i, cfg))
		h.wcfgs = append(h.wcfgs, cfg)
	}
	for _, w := range h.workers {
		w.expect(t, "ready", 30*time.Second)
	}
	return h
}

// keptDir makes a directory for the run's histories and visualizations
// that is removed at cleanup only when the test passed (and neither
// COORD_ROBUSTNESS_KEEP is set nor the test is a TestCatches case).
func keptDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "robustness-")
	if err != nil {
		t.Fatal(err)
	}
	// TestCatches passes when it finds a defect: keep what it found.
	keep := os.Getenv("COORD_ROBUSTNESS_KEEP") != "" || strings.HasPrefix(t.Name(), "TestCatches/")
	t.Cleanup(func() {
		if t.Failed() || keep {
			t.Logf("histories, worker configs and visualizations kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}

func (h *harness) timing() Timing {
	nodes := len(h.nodes)
	if h.sentinel != nil {
		nodes = 1 // node faults go to the master
	}
	return Timing{LeaseTTL: leaseTTL, Staleness: h.stale, Workers: numWorkers, Nodes: nodes, MigrateTargets: len(h.migrations)}
}

// Lease shapes whose slots a migrate-slot moves (-robustness.migrate).
const (
	migrateLock   = "lock"   // an exclusive lock: lock:{R}, :q, :fence
	migrateRW     = "rw"     // a read-write lock: rw:{R}:w, :fence, :r, :q
	migrateSem    = "sem"    // the semaphore: sem:{R}, :fence
	migrateElect  = "elect"  // the election: elect:{E}, :fence
	migrateStream = "stream" // the stream: st:{S}, :dead, :live, :trimmed
)

// migration is one slot a migrate-slot may move: a shape's name and a
// key in the slot.
type migration struct {
	shape, name, key string
}

func (m migration) String() string { return m.shape + " " + m.name }

// migrations lists the slots of the workload's lease shapes, the
// exclusive locks first (as every migrate-slot moved before the other
// shapes joined), restricted to the shapes -robustness.migrate names.
func migrations(tb testing.TB, cfg WorkerConfig) []migration {
	var all []migration
	for _, r := range cfg.Resources {
		all = append(all, migration{migrateLock, r, cfg.Prefix + "lock:{" + r + "}:fence"})
	}
	for _, r := range cfg.RWResources {
		all = append(all, migration{migrateRW, r, cfg.Prefix + "rw:{" + r + "}:fence"})
	}
	for _, r := range cfg.Semaphores {
		all = append(all, migration{migrateSem, r, cfg.Prefix + "sem:{" + r + "}:fence"})
	}
	if cfg.Election != "" {
		all = append(all, migration{migrateElect, cfg.Election, cfg.Prefix + "elect:{" + cfg.Election + "}:fence"})
	}
	if cfg.Streams {
		all = append(all, migration{migrateStream, StreamName, cfg.Prefix + "st:{" + StreamName + "}"})
	}
	only := cmp.Or(*flagMigrate, os.Getenv("COORD_ROBUSTNESS_MIGRATE"))
	if only == "" {
		return all
	}
	var out []migration
	for _, shape := range strings.Split(only, ",") {
		n := len(out)
		for _, m := range all {
			if m.shape == shape {
				out = append(out, m)
			}
		}
		if len(out) == n {
			tb.Fatalf("-robustness.migrate: no slot of shape %q (lock, rw, sem, elect, stream)", shape)
		}
	}
	return out
}

// buildWorker builds the worker binary into a temp dir, without -race to
// spare the machine unless COORD_ROBUSTNESS_WORKER_RACE is set.
func buildWorker(t *testing.T) string {
	t.Helper()
	// go test puts its own GOROOT/bin first on PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to build the worker: %v", err)
	}
	out := filepath.Join(t.TempDir(), "worker")
	args := []string{"build", "-o", out}
	if os.Getenv("COORD_ROBUSTNESS_WORKER_RACE") != "" {
		args = append(args, "-race") // a race report makes the worker exit 66: a "worker" finding
	}
	cmd := exec.Command(goBin, append(args, "github.com/cgn-bot/coord/reliability/robustness/worker")...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the worker: %v\n%s", err, b)
	}
	return out
}

// workerProc is a running worker process.
type workerProc struct {
	id      int
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string
	stderr  *coordtest.SyncBuffer
	history string
	exited  chan struct{}
	waitErr error
}

func startWorker(t *testing.T, bin, dir string, id int, cfg WorkerConfig) *workerProc {
	t.Helper()
	cfg.ID = id
	cfg.History = filepath.Join(dir, fmt.Sprintf("history-%d.jsonl", id))
	path := filepath.Join(dir, fmt.Sprintf("worker-%d.json", id))
	if err := WriteConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	w := &workerProc{id: id, lines: make(chan string, 16), stderr: &coordtest.SyncBuffer{}, history: cfg.History, exited: make(chan struct{})}
	w.cmd = exec.Command(bin, "-config", path)
	w.cmd.Stderr = w.stderr
	var err error
	if w.stdin, err = w.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		close(w.lines)
		w.waitErr = w.cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		_ = w.cmd.Process.Signal(syscall.SIGCONT)
		_ = w.stdin.Close()
		select {
		case <-w.exited:
		case <-time.After(20 * time.Second):
			_ = w.cmd.Process.Kill()
			<-w.exited
		}
	})
	return w
}

// expect waits for the worker to print line.
func (w *workerProc) expect(t *testing.T, line string, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				t.Fatalf("worker %d exited before %q: %v\n%s", w.id, line, w.waitErr, w.stderr.String())
			}
			if l == line {
				return
			}
		case <-timer.C:
			t.Fatalf("worker %d did not print %q within %v\n%s", w.id, line, d, w.stderr.String())
		}
	}
}

func (w *workerProc) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(w.stdin, line+"\n"); err != nil {
		t.Fatalf("worker %d: %v\n%s", w.id, err, w.stderr.String())
	}
}

// run runs the schedule, stops the workers, checks the invariants and the
// histories, and returns the findings.
func (h *harness) run(sched []Fault) []Finding {
	t := h.t
	t.Logf("seed %d; staleness bound %v; schedule:\n%s", h.seed, h.stale, FormatSchedule(sched))
	start := time.Now()
	if h.sentinel != nil {
		stop := h.watchMaster()
		defer stop()
	}
	for _, f := range sched {
		if d := time.Until(start.Add(f.At)); d > 0 {
			time.Sleep(d) // the schedule's own clock, not a wait for a condition
		}
		h.apply(f)
	}
	time.Sleep(2 * time.Second) // a quiet tail of workload after the last fault
	for _, w := range h.workers {
		w.send(t, "stop")
	}
	for _, w := range h.workers {
		w.expect(t, "quiesced", 2*leaseTTL+30*time.Second)
	}
	var findings []Finding
	findings = append(findings, h.invariants()...)
	server := h.streamState()
	for _, w := range h.workers {
		w.send(t, "exit")
		select {
		case <-w.exited:
		case <-time.After(30 * time.Second):
			t.Fatalf("worker %d did not exit within 30s", w.id)
		}
		if w.waitErr != nil {
			findings = append(findings, Finding{Checker: CheckWorker, Count: 1, Problems: []string{fmt.Sprintf("worker %d: %v\n%s", w.id, w.waitErr, w.stderr.String())}})
		}
	}
	var ops []Op
	for _, w := range h.workers {
		f, err := os.Open(w.history)
		if err != nil {
			t.Fatal(err)
		}
		wops, err := ReadHistory(f)
		_ = f.Close()
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, wops...)
	}
	ops = append(ops, server...)
	h.mu.Lock()
	cfg := CheckConfig{
		Staleness: h.stale, ExclusionSlack: 100 * time.Millisecond, DataLoss: h.dataLoss,
		Network: h.network, Grace: time.Second, Paused: h.paused, Dir: h.dir, Timeout: 20 * time.Second,
		Lossy: h.lossy, ClaimAfter: claimAfter, Killed: h.killed,
	}
	oom := append([]Window(nil), h.oom...)
	notes := append([]string(nil), h.notes...)
	h.mu.Unlock()
	if err := saveRun(h.dir, runFile{Seed: h.seed, Schedule: sched, Check: cfg}); err != nil {
		t.Error(err)
	}
	findings = append(findings, Check(ops, cfg)...)
	if reps := h.store.Repeats(); len(reps) > 0 {
		f := Finding{Checker: CheckStoreFence, Count: len(reps)}
		f.Problems = reps[:min(len(reps), maxProblems)]
		findings = append(findings, f)
	}
	findings = append(findings, progress(ops)...)
	acc, rej := h.store.Counts()
	t.Logf("%d operations; fenced writes accepted %d, rejected %d; events received twice: %d; %s; histories in %s",
		len(ops), acc, rej, EventRepeats(ops), healthDuring(ops, oom), h.dir)
	t.Log(LeaseSummary(ops))
	t.Log(StreamSummary(ops, cfg))
	for _, n := range notes {
		t.Log(n)
	}
	return findings
}

// progress fails a run that did too little of some part of the workload
// to check it.
func progress(ops []Op) []Finding {
	count := map[string]int{}
	for _, op := range ops {
		if op.Err == "" {
			count[op.Kind]++
		}
	}
	f := Finding{Checker: CheckProgress}
	for _, k := range []string{KindLease, KindSessGet, KindSessPut, KindSessLife, KindRead, KindSource, KindEvent,
		KindRW, KindPermit, KindLeader, KindAppend, KindDeliver, KindObserve} {
		if count[k] < 10 {
			f.Count++
			f.Problems = append(f.Problems, fmt.Sprintf("only %d successful %s operations", count[k], k))
		}
	}
	if f.Count == 0 {
		return nil
	}
	return []Finding{f}
}

// healthDuring summarizes what Health said during the OOM windows.
func healthDuring(ops []Op, ws []Window) string {
	if len(ws) == 0 {
		return "no OOM window"
	}
	seen := map[string]int{}
	for _, op := range byKind(ops, KindHealth) {
		for _, w := range ws {
			if op.Call >= w.Start && op.Call <= w.End {
				seen[op.Value]++
			}
		}
	}
	return fmt.Sprintf("Health during OOM: %v", seen)
}

func (h *harness) window(kind string, start time.Time, network bool) {
	w := Window{Name: kind, Start: start.UnixNano(), End: time.Now().UnixNano()}
	h.mu.Lock()
	defer h.mu.Unlock()
	if network {
		h.network = append(h.network, w)
	} else if kind == FaultOOM {
		h.oom = append(h.oom, w)
	}
}

func (h *harness) note(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.notes = append(h.notes, fmt.Sprintf(format, args...))
}

// watchMaster polls the first sentinel for the master's address every
// 100ms until stopped. Every change is a failover the schedule may not
// have asked for (the sentinels decide): writes not yet replicated may be
// lost, so it is a data-loss boundary, and commands may fail around it,
// so it opens a 2s fault window either side.
func (h *harness) watchMaster() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	sentinel := h.sentinel.Sentinels()[0]
	name := h.sentinel.MasterName()
	go func() {
		defer close(done)
		last := ""
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			qctx, qcancel := context.WithTimeout(ctx, time.Second)
			v, err := sentinel.DoContext(qctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
			qcancel()
			if a, ok := v.([]any); err == nil && ok && len(a) == 2 {
				addr := fmt.Sprint(a[0], ":", a[1])
				if last != "" && addr != last {
					now := time.Now()
					h.mu.Lock()
					h.dataLoss = append(h.dataLoss, now.UnixNano())
					h.lossy = append(h.lossy, Window{Name: "failover", Start: now.Add(-2 * time.Second).UnixNano(), End: now.UnixNano()})
					h.network = append(h.network, Window{Name: "failover", Start: now.Add(-2 * time.Second).UnixNano(), End: now.Add(2 * time.Second).UnixNano()})
					h.notes = append(h.notes, fmt.Sprintf("the sentinels moved the master from %s to %s at %s", last, addr, ts(now.UnixNano())))
					h.mu.Unlock()
				}
				last = addr
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// masters returns the servers that take writes now: the single server,
// every Cluster master, or the Sentinel group's master.
func (h *harness) masters() []*redistest.Server {
	if h.sentinel != nil {
		return []*redistest.Server{h.sentinel.Master(h.t)}
	}
	return h.nodes
}

// apply injects one fault and returns when it is over.
func (h *harness) apply(f Fault) {
	t := h.t
	start := time.Now()
	switch f.Kind {
	case FaultRestore:
		n := h.nodes[f.Node]
		aofDir := filepath.Join(n.Dir(), "appendonlydir")
		older := filepath.Join(h.dir, fmt.Sprintf("aof-%d", start.UnixNano()))
		if h.aof {
			// The AOF as it is now (its last command may be cut short,
			// which aof-load-truncated accepts).
			copyDir(t, aofDir, older)
		} else {
			n.Do(t, "SAVE")
		}
		time.Sleep(f.Dur)
		killed := time.Now()
		// Same dir: the server loads the snapshot (or AOF) of Dur ago.
		if h.cluster != nil {
			h.cluster.Kill(t, f.Node)
			h.cluster.Restart(t, f.Node) // waits for cluster_state:ok
		} else {
			n.Kill(t)
			if h.aof {
				if err := os.RemoveAll(aofDir); err != nil {
					t.Fatal(err)
				}
				copyDir(t, older, aofDir)
			}
			n.Restart(t)
		}
		h.mu.Lock()
		h.dataLoss = append(h.dataLoss, killed.UnixNano())
		h.lossy = append(h.lossy, Window{Name: f.Kind, Start: start.UnixNano(), End: killed.UnixNano()})
		h.mu.Unlock()
		h.window(f.Kind, killed, true)
	case FaultPauseServer, FaultStallServer:
		n := h.nodes[f.Node]
		n.Pause(t)
		time.Sleep(f.Dur)
		n.Resume(t)
		h.window(f.Kind, start, true)
	case FaultPauseWorker:
		p := h.workers[f.Target].cmd.Process
		if err := p.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(f.Dur)
		if err := p.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		h.window(f.Kind, start, true)
		h.mu.Lock()
		h.paused = append(h.paused, Window{Name: f.Kind, Start: start.UnixNano(), End: time.Now().UnixNano(), Worker: f.Target})
		h.mu.Unlock()
	case FaultKillWorker:
		h.killWorker(f)
	case FaultKillNormal, FaultKillPubSub:
		typ := "normal"
		if f.Kind == FaultKillPubSub {
			typ = "pubsub"
		}
		var killed []any
		for _, n := range h.masters() {
			killed = append(killed, n.Do(t, "CLIENT", "KILL", "TYPE", typ))
		}
		h.note("%s at %s: connections closed per node: %v", f.Kind, ts(start.UnixNano()), killed)
		h.window(f.Kind, start, true)
	case FaultPauseWrites:
		for _, n := range h.masters() {
			n.Do(t, "CLIENT", "PAUSE", strconv.FormatInt(f.Dur.Milliseconds(), 10), "WRITE")
		}
		time.Sleep(f.Dur)
		h.window(f.Kind, start, true)
	case FaultOOM:
		masters := h.masters()
		for _, n := range masters {
			info, _ := n.Do(t, "INFO", "memory").(string)
			n.Do(t, "CONFIG", "SET", "maxmemory-policy", "noeviction")
			n.Do(t, "CONFIG", "SET", "maxmemory", infoField(info, "used_memory"))
		}
		time.Sleep(f.Dur)
		for _, n := range masters {
			n.Do(t, "CONFIG", "SET", "maxmemory", "0")
		}
		h.window(f.Kind, start, false)
	case FaultBlackhole:
		subs := 0
		for _, p := range h.proxies[f.Target] {
			subs += p.Subscribers()
		}
		if subs == 0 {
			h.note("blackhole at %s: worker %d has no subscriber connection open", ts(start.UnixNano()), f.Target)
		}
		for _, p := range h.proxies[f.Target] {
			p.Blackhole(true)
		}
		time.Sleep(f.Dur)
		for _, p := range h.proxies[f.Target] {
			p.Blackhole(false)
		}
		h.window(f.Kind, start, false)
	case FaultMigrateSlot:
		if h.cluster == nil {
			t.Fatalf("%s needs a Cluster", f.Kind)
		}
		h.migrateSlot(h.migrations[f.Target%len(h.migrations)], f.Node, f.Dur/10, f.Dur/2, f.Dur-f.Dur/10-f.Dur/2)
		h.window(f.Kind, start, true)
	case FaultFailoverLagging:
		g := h.sentinel
		if g == nil {
			t.Fatalf("%s needs a Sentinel group", f.Kind)
		}
		master := g.Master(t)
		replica := h.nodes[0]
		if replica == master {
			replica = h.nodes[1]
		}
		replica.Pause(t)
		time.Sleep(f.Dur) // the master takes writes the replica does not get
		killed := time.Now()
		master.Kill(t)
		replica.Resume(t)
		g.WaitForNewMaster(t, master)
		master.Restart(t) // empty: it becomes the new master's replica
		g.WaitHealthy(t)
		h.mu.Lock()
		h.dataLoss = append(h.dataLoss, killed.UnixNano())
		h.lossy = append(h.lossy, Window{Name: f.Kind, Start: start.UnixNano(), End: killed.UnixNano()})
		h.mu.Unlock()
		h.window(f.Kind, start, true)
	default:
		t.Fatalf("unknown fault %q", f.Kind)
	}
}

// migrateSlot moves the slot of m's key from its master to the master
// offset places after it in node order. It marks the slot IMPORTING and
// MIGRATING, notes the keys the slot holds then (the fence counter last)
// and waits hold with no key moved; then it moves those keys one at a
// time with MIGRATE, waiting an equal share of split after each, so that
// the shape's scripts meet its keys split between the two masters (the
// leases that stood when the slot was marked moved, the counter not yet;
// the hold is short because the scripts that make leases meet TRYAGAIN
// meanwhile, so those standing end and no new ones come); then the rest
// (keys made meanwhile on the old master), waits after with every key on
// the new master and the slot still migrating (ASK), and gives the slot to
// the new master on every master.
func (h *harness) migrateSlot(m migration, offset int, hold, split, after time.Duration) {
	t := h.t
	ids := make([]string, len(h.nodes))
	for i, n := range h.nodes {
		ids[i], _ = n.Do(t, "CLUSTER", "MYID").(string)
	}
	slot, _ := h.nodes[0].Do(t, "CLUSTER", "KEYSLOT", m.key).(int64)
	src := -1
	for i, n := range h.nodes {
		if c, _ := n.Do(t, "CLUSTER", "COUNTKEYSINSLOT", slot).(int64); c > 0 {
			src = i
		}
	}
	if src < 0 {
		h.note("migrate-slot: slot %d of %s holds no key", slot, m)
		return
	}
	dst := (src + 1 + offset%(len(h.nodes)-1)) % len(h.nodes)
	from, to := h.nodes[src], h.nodes[dst]
	to.Do(t, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src])
	from.Do(t, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst])
	start := time.Now()
	// The keys as the workload left them, before the scripts that meet
	// TRYAGAIN let its leases end; the fence counter last.
	keys, _ := from.Do(t, "CLUSTER", "GETKEYSINSLOT", slot, 100).([]any)
	slices.SortStableFunc(keys, func(a, b any) int {
		fa, fb := strings.HasSuffix(fmt.Sprint(a), ":fence"), strings.HasSuffix(fmt.Sprint(b), ":fence")
		switch {
		case fa && !fb:
			return 1
		case fb && !fa:
			return -1
		}
		return 0
	})
	time.Sleep(hold) // the schedule's clock: commands meet TRYAGAIN and ASK meanwhile
	// One key at a time, a share of the split after each: a script
	// whose keys are split between the two masters meets TRYAGAIN.
	var order []string
	one := 0
	noted := len(keys)
	for _, k := range keys {
		if from.Do(t, "MIGRATE", "127.0.0.1", to.Port(), k, 0, 5000) == "OK" {
			order = append(order, strings.TrimPrefix(fmt.Sprint(k), h.cfg.Prefix))
			one++
		}
		time.Sleep(split / time.Duration(len(keys))) // the schedule's clock, as above
	}
	rest := 0
	for {
		keys, _ := from.Do(t, "CLUSTER", "GETKEYSINSLOT", slot, 100).([]any)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", "127.0.0.1", to.Port(), "", 0, 5000, "KEYS"}
		from.Do(t, append(args, keys...)...)
		rest += len(keys)
	}
	time.Sleep(after) // the schedule's clock: every key moved, commands meet ASK
	to.Do(t, "CLUSTER", "SETSLOT", slot, "NODE", ids[dst])
	from.Do(t, "CLUSTER", "SETSLOT", slot, "NODE", ids[dst])
	for i, n := range h.nodes {
		if i != src && i != dst {
			n.Do(t, "CLUSTER", "SETSLOT", slot, "NODE", ids[dst])
		}
	}
	h.note("migrate-slot: slot %d (%s) moved from node %d to node %d in %v: of the %d keys it held when marked, %d moved one at a time (%s; the others had gone), then %d more",
		slot, m, src, dst, time.Since(start).Round(time.Millisecond), noted, one, strings.Join(order, ", "), rest)
}

// copyDir copies the regular files of dir src into a new dir dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return "1"
}

// invariants checks, after the workers stopped and waited for their
// released leases to end: no lock is held, and every session index
// agrees with the sessions.
func (h *harness) invariants() []Finding {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []Finding
	keys := Finding{Checker: CheckLockKeys}
	for _, res := range h.cfg.Resources {
		locked, err := h.admin.Locker().Locked(ctx, res)
		for i := 0; i < 20 && (err != nil || locked); i++ {
			time.Sleep(100 * time.Millisecond) // polled for up to 2s
			locked, err = h.admin.Locker().Locked(ctx, res)
		}
		if err != nil || locked {
			keys.Count++
			keys.Problems = append(keys.Problems, fmt.Sprintf("%s still locked (err %v) with every worker stopped for over %v", res, err, 2*leaseTTL))
		}
	}
	h.leaseInvariants(ctx, &keys)
	if keys.Count > 0 {
		out = append(out, keys)
	}
	idx := Finding{Checker: CheckIndex}
	st := h.admin.Sessions()
	var listed int64
	for _, u := range append([]string{"shared"}, h.cfg.Users...) {
		ss, err := st.ByUser(ctx, u)
		if err != nil {
			idx.Count++
			idx.Problems = append(idx.Problems, fmt.Sprintf("ByUser(%s): %v", u, err))
			continue
		}
		for _, s := range ss {
			if s.UserID != u {
				idx.Count++
				idx.Problems = append(idx.Problems, fmt.Sprintf("ByUser(%s) lists a session of %s", u, s.UserID))
			}
		}
		listed += int64(len(ss))
	}
	n, err := st.Count(ctx)
	if err != nil || n != listed {
		idx.Count++
		idx.Problems = append(idx.Problems, fmt.Sprintf("Count = %d (err %v), the users' indexes list %d", n, err, listed))
	}
	for i, id := range h.cfg.Sessions {
		if ok, err := st.Exists(ctx, id); err != nil || !ok {
			idx.Count++
			idx.Problems = append(idx.Problems, fmt.Sprintf("shared session s%d: exists %v (err %v)", i, ok, err))
		}
	}
	if idx.Count > 0 {
		out = append(out, idx)
	}
	return out
}

// runFile is what a run keeps beside its histories so that its checks
// can be run again (TestRecheck).
type runFile struct {
	Seed     int64
	Schedule []Fault
	Check    CheckConfig
}

func saveRun(dir string, r runFile) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "run.json"), b, 0o600)
}

// TestRecheck runs the history checkers again on a kept run:
// COORD_ROBUSTNESS_RECHECK=/tmp/robustness-NNN (the directory a failed
// run names).
func TestRecheck(t *testing.T) {
	dir := os.Getenv("COORD_ROBUSTNESS_RECHECK")
	if dir == "" {
		t.Skip("set COORD_ROBUSTNESS_RECHECK to a kept run's directory")
	}
	b, err := os.ReadFile(filepath.Join(dir, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r runFile
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "history-*.jsonl"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no histories in %s (%v)", dir, err)
	}
	var ops []Op
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		wops, err := ReadHistory(f)
		_ = f.Close()
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, wops...)
	}
	r.Check.Dir = dir
	start := time.Now()
	fs := Check(ops, r.Check)
	t.Logf("seed %d, %d operations checked in %v; schedule:\n%s", r.Seed, len(ops), time.Since(start).Round(time.Millisecond), FormatSchedule(r.Schedule))
	if len(fs) > 0 {
		t.Errorf("%d checker(s) fired:\n%s", len(fs), formatFindings(fs))
	}
}
