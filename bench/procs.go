package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// The multi-process contended test: procs copies of this program (each an
// OS process with its own client, and for coord its own Backend), each
// running perProc goroutines that contend for one key, as a fleet does.
// The parent starts the children with -proc-child, waits until every one
// is connected, starts them together and merges their figures.

const (
	procs   = 4
	perProc = 4
)

// childSpec is what a child is told on its command line.
type childSpec struct {
	Contender  string        `json:"contender"`
	Addr       string        `json:"addr"`
	Key        string        `json:"key"`
	Goroutines int           `json:"goroutines"`
	Duration   time.Duration `json:"duration"`
}

// childResult is what a child prints on stdout when it is done.
type childResult struct {
	Waits   []time.Duration `json:"waits"` // each acquisition's wait
	MaxWait time.Duration   `json:"max_wait"`
	Starved int             `json:"starved"`
	Err     string          `json:"err,omitempty"`
}

// runProcChild is the child's side: spec is a childSpec in JSON. It
// prints "ready", waits for a line on stdin, runs, and prints its
// childResult.
func runProcChild(spec string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "coordbench child:", err)
		return 2
	}
	res := procChild(s)
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}

func procChild(s childSpec) childResult {
	ctx := context.Background()
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr, PoolSize: 32, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
	defer c.Close()
	var l locker
	switch s.Contender {
	case "raw":
		l = newRawLocker(c)
	case "coord":
		be, err := coordredis.New(c, &coordredis.Options{Prefix: "bench:"})
		if err != nil {
			return childResult{Err: err.Error()}
		}
		defer func() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_ = be.Close(cctx)
		}()
		l = coordLocker{be.Locker()}
	default:
		return childResult{Err: "unknown contender " + s.Contender}
	}
	// Warm the connection and the scripts on a key of its own.
	if rel, err := l.obtain(ctx, s.Key+":warm:"+s.Contender, false); err == nil {
		_ = rel(ctx)
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return childResult{Err: "no start: " + err.Error()}
	}
	return contendFor(ctx, l, s.Key, s.Goroutines, s.Duration)
}

// contendFor has goroutines take key in turn with zero hold time for d,
// as runContended does, and returns the waits.
func contendFor(ctx context.Context, l locker, key string, goroutines int, d time.Duration) childResult {
	end := time.Now().Add(d)
	wctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	waits := make([]samples, goroutines)
	maxWait := make([]time.Duration, goroutines)
	errs := make([]error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			w := make(samples, 0, 1024)
			defer func() { waits[g] = w }()
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				rel, err := l.obtain(wctx, key, true)
				t1 := time.Now()
				if err != nil {
					if wctx.Err() != nil {
						maxWait[g] = max(maxWait[g], end.Sub(t0))
						return
					}
					errs[g] = err
					return
				}
				if t1.After(end) {
					maxWait[g] = max(maxWait[g], end.Sub(t0))
					errs[g] = rel(context.Background())
					return
				}
				w = append(w, t1.Sub(t0))
				maxWait[g] = max(maxWait[g], t1.Sub(t0))
				if err := rel(context.Background()); err != nil {
					errs[g] = err
					return
				}
			}
		})
	}
	wg.Wait()
	res := childResult{Waits: merge(waits)}
	for g := range goroutines {
		res.MaxWait = max(res.MaxWait, maxWait[g])
		if len(waits[g]) == 0 {
			res.Starved++
		}
	}
	if err := errors.Join(errs...); err != nil {
		res.Err = err.Error()
	}
	return res
}

// runProcs runs one cell of the multi-process test: procs children of
// contender on key, for d.
func runProcs(ctx context.Context, srv *server, contender, key string, d, starveBound time.Duration) (metrics, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	spec, err := json.Marshal(childSpec{Contender: contender, Addr: srv.addr, Key: key, Goroutines: perProc, Duration: d})
	if err != nil {
		return nil, err
	}
	type child struct {
		cmd *exec.Cmd
		in  io.WriteCloser
		out *bufio.Reader
	}
	cctx, cancel := context.WithTimeout(ctx, d+time.Minute)
	defer cancel()
	kids := make([]*child, 0, procs)
	defer func() {
		for _, k := range kids {
			_ = k.in.Close()
			_ = k.cmd.Wait()
		}
	}()
	for range procs {
		cmd := exec.CommandContext(cctx, self, "-proc-child", string(spec))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		kids = append(kids, &child{cmd: cmd, in: in, out: bufio.NewReader(out)})
	}
	for _, k := range kids {
		line, err := k.out.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			return nil, fmt.Errorf("child not ready: %q %v", line, err)
		}
	}
	for _, k := range kids {
		if _, err := io.WriteString(k.in, "go\n"); err != nil {
			return nil, err
		}
	}
	results := make([]childResult, len(kids))
	for i, k := range kids {
		if err := json.NewDecoder(k.out).Decode(&results[i]); err != nil {
			return nil, fmt.Errorf("child result: %w", err)
		}
		if results[i].Err != "" {
			return nil, fmt.Errorf("child: %s", results[i].Err)
		}
	}
	var all []time.Duration
	var worst time.Duration
	starved := 0
	counts := make([]float64, len(results))
	total := 0.0
	for i, r := range results {
		all = append(all, r.Waits...)
		worst = max(worst, r.MaxWait)
		starved += r.Starved
		counts[i] = float64(len(r.Waits))
		total += counts[i]
	}
	if worst > starveBound {
		starved = max(starved, 1)
	}
	// The share spread: the largest distance of a process's share of the
	// acquisitions from the mean share, in % of the mean.
	spread := math.NaN()
	if total > 0 {
		mean := total / float64(len(counts))
		spread = 0
		for _, c := range counts {
			spread = max(spread, 100*math.Abs(c-mean)/mean)
		}
	}
	slices.Sort(all)
	return metrics{
		"acq/s":    float64(len(all)) / d.Seconds(),
		"wait p50": percentile(all, 0.50),
		"wait p99": percentile(all, 0.99),
		"wait max": ms(worst),
		"share":    spread,
		"starved":  float64(starved),
	}, nil
}

// procTest is the multi-process contended test.
func procTest(srv *server, cfg config) *test {
	return &test{
		id:    fmt.Sprintf("contended-%dproc", procs),
		title: fmt.Sprintf("Locks, %d processes × %d goroutines contending for one key, zero hold time", procs, perProc),
		note: fmt.Sprintf("%d OS processes (copies of the bench program), each with its own client (coord: its own Backend), "+
			"each running %d goroutines that wait as in the contended test. Share spread = the largest distance of one "+
			"process's share of the acquisitions from the mean share, in %% of the mean. Client CPU counts the parent only.", procs, perProc),
		contenders: []string{"raw", "coord"}, ops: rate("acq/s"),
		metrics: []metricDef{
			{key: "acq/s", label: "acquisitions/s", ratio: true, worst: true, low: true},
			{key: "wait p50", label: "wait p50 ms", ratio: true},
			{key: "wait p99", label: "wait p99 ms", ratio: true, worst: true},
			{key: "wait max", label: "wait max ms", worst: true},
			{key: "share", label: "share spread %", worst: true},
			{key: "starved", label: "starved goroutines", worst: true},
		},
		run: func(ctx context.Context, c string, r int, d time.Duration) (metrics, error) {
			return runProcs(ctx, srv, c, fmt.Sprintf("hotp:%s:%d", c, r), d, cfg.starve)
		},
	}
}
