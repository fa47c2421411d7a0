// Command coordbench measures coord's Redis backend side by side with raw
// go-redis, redis/rueidis, go-redsync/redsync and bsm/redislock on a redis-server it
// starts itself on a free loopback port (no persistence) and stops at
// exit.
//
// One run measures every test in interleaved rounds: each round runs every
// contender of every test in turn (the order rotating from round to round),
// and the report gives the median over the rounds. A ratio is the median
// of the per-round ratios ours/raw, so that load on the machine that
// changes from round to round cancels out. The report is a markdown table
// on stdout, with the targets of issues 7 and 17 and PASS or MISS for each.
//
// Usage:
//
//	go run . [-duration 1s] [-rounds 5] [-runs 3] [-only regexp] [-cpuprofile file]
//
// With -runs N the whole measurement runs N times, each on a redis-server
// of its own, each printing its report; a summary then gives, for every
// target and every test's headline figure, the figure of each run, the
// worst round over all runs and the spread of the runs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"
	"time"
)

// coordRev is the coord commit measured, set by run.sh with -ldflags.
var coordRev = "unknown"

type config struct {
	duration    time.Duration
	rounds      int
	runs        int
	goroutines  int
	rate        int
	latencyN    int
	starve      time.Duration
	redisServer string
	cpuprofile  string
	trace       string
	only        *regexp.Regexp
	out         string
	warmup      bool
}

func main() {
	os.Exit(run())
}

func run() int {
	var cfg config
	var only string
	flag.DurationVar(&cfg.duration, "duration", 800*time.Millisecond, "how long each contender runs in each test of each round")
	flag.IntVar(&cfg.rounds, "rounds", 5, "interleaved rounds; the report gives medians over them")
	flag.IntVar(&cfg.runs, "runs", 1, "whole runs, each with its report; with more than one, a summary gives each run's figures, the worst round and the spread")
	flag.IntVar(&cfg.goroutines, "goroutines", 16, "goroutines of the concurrent tests")
	flag.IntVar(&cfg.rate, "rate", 1000, "messages/s of the publish-to-receive latency test")
	flag.IntVar(&cfg.latencyN, "latency-samples", 3000, "messages per cell of the publish-to-receive latency test: its cells last long enough for this many at -rate (at least -duration)")
	flag.DurationVar(&cfg.starve, "starve", 500*time.Millisecond, "a contending goroutine whose longest wait is over this (or that never acquires) counts as starved")
	flag.StringVar(&cfg.redisServer, "redis-server", "redis-server", "redis-server binary")
	flag.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile of the measured rounds (of the first run) to `file`")
	flag.StringVar(&cfg.trace, "trace", "", "write an execution trace of the measured rounds (of the first run) to `file`, for go tool trace")
	flag.StringVar(&only, "only", "", "run only the cells whose \"test/contender\" matches this `regexp` (e.g. 'contended/coord')")
	flag.StringVar(&cfg.out, "o", "", "also write the report to `file`")
	flag.BoolVar(&cfg.warmup, "warmup", true, "run every cell once, unmeasured, before the rounds")
	child := flag.String("proc-child", "", "run as a child of the multi-process test (internal)")
	flag.Parse()
	if *child != "" {
		return runProcChild(*child)
	}
	if only != "" {
		re, err := regexp.Compile(only)
		if err != nil {
			fmt.Fprintln(os.Stderr, "coordbench: -only:", err)
			return 2
		}
		cfg.only = re
	}
	if cfg.rounds < 1 || cfg.runs < 1 || cfg.duration <= 0 || cfg.goroutines < 2 || cfg.rate < 1 || cfg.latencyN < 0 {
		fmt.Fprintln(os.Stderr, "coordbench: -rounds, -runs, -duration, -rate must be positive, -latency-samples not negative and -goroutines at least 2")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "coordbench:", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, cfg config) error {
	var w io.Writer = os.Stdout
	if cfg.out != "" {
		f, err := os.Create(cfg.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = io.MultiWriter(os.Stdout, f)
	}
	var runs []*runResult
	for i := range cfg.runs {
		if cfg.runs > 1 {
			fmt.Fprintf(os.Stderr, "coordbench: run %d of %d\n", i+1, cfg.runs)
		}
		rr, err := benchRun(ctx, cfg, i)
		if err != nil {
			return err
		}
		if cfg.runs > 1 {
			fmt.Fprintf(w, "# Run %d of %d\n\n", i+1, cfg.runs)
		}
		report(w, cfg, rr.env, rr.tests, rr.res)
		runs = append(runs, rr)
	}
	if len(runs) > 1 {
		summary(w, cfg, runs)
	}
	return nil
}

// runResult is one whole run: its tests, figures and machine.
type runResult struct {
	env   *env
	tests []*test
	res   *results
}

// benchRun does one whole run (run counts from 0) on a redis-server of
// its own.
func benchRun(ctx context.Context, cfg config, run int) (*runResult, error) {
	srv, err := startServer(ctx, cfg.redisServer)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	fmt.Fprintf(os.Stderr, "coordbench: redis-server on %s\n", srv.addr)

	env, err := describe(ctx, srv)
	if err != nil {
		return nil, err
	}
	tests, closeAll, err := setup(ctx, srv, cfg)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	leaseT, closeLeases, err := leaseTests(srv, cfg)
	if err != nil {
		return nil, err
	}
	defer closeLeases()
	tests = append(tests, leaseT...)

	meter := cpuMeter{admin: srv.newClient()}
	defer meter.admin.Close()
	res := newResults(tests, cfg.rounds)
	cells := 0
	for _, t := range tests {
		for _, c := range t.contenders {
			if cfg.selected(t.id, c) {
				cells++
			}
		}
	}
	if cells == 0 {
		return nil, errors.New("-only matches no test/contender")
	}
	est := time.Duration(cells*cfg.rounds) * cfg.duration
	fmt.Fprintf(os.Stderr, "coordbench: %d cells x %d rounds x %v: about %v of measurement\n", cells, cfg.rounds, cfg.duration, est.Round(time.Second))

	if cfg.warmup {
		fmt.Fprintln(os.Stderr, "coordbench: warm-up")
		for _, t := range tests {
			for _, c := range t.contenders {
				if !cfg.selected(t.id, c) {
					continue
				}
				if _, err := t.run(ctx, c, -1, max(cfg.duration/5, 100*time.Millisecond)); err != nil {
					return nil, fmt.Errorf("warm-up %s/%s: %w", t.id, c, err)
				}
			}
		}
	}

	if cfg.cpuprofile != "" && run == 0 {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.trace != "" && run == 0 {
		f, err := os.Create(cfg.trace)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return nil, err
		}
		defer trace.Stop()
	}
	stalls := startStallMonitor()
	defer stalls.close()
	env.loadStart = loadavg()
	started := time.Now()
	for r := range cfg.rounds {
		for _, t := range tests {
			n := len(t.contenders)
			for i := range n {
				c := t.contenders[(i+r)%n]
				if !cfg.selected(t.id, c) {
					continue
				}
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				runtime.GC()
				mark := meter.mark(ctx)
				stalls.reset()
				m, err := t.run(ctx, c, run*cfg.rounds+r, cfg.duration)
				if err != nil {
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
					res.fail(t.id, c, r, err)
					fmt.Fprintf(os.Stderr, "coordbench: round %d %s/%s: %v\n", r+1, t.id, c, err)
					continue
				}
				m["stall"] = ms(stalls.reset())
				if t.ops != nil {
					meter.add(ctx, m, mark, t.ops(m, cfg.duration))
				}
				res.add(t.id, c, r, m)
				fmt.Fprintf(os.Stderr, "coordbench: run %d round %d/%d %-12s %-12s %s\n", run+1, r+1, cfg.rounds, t.id, c, m.brief(t.metrics))
			}
		}
	}
	env.elapsed = time.Since(started)
	env.loadEnd = loadavg()

	return &runResult{env: env, tests: tests, res: res}, nil
}

func (c config) selected(test, contender string) bool {
	return c.only == nil || c.only.MatchString(test+"/"+contender)
}

func (m metrics) brief(defs []metricDef) string {
	var b strings.Builder
	for _, d := range defs {
		v, ok := m[d.key]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, " %s=%s", d.key, num(v))
	}
	return strings.TrimSpace(b.String())
}

// num formats v with about three significant digits.
func num(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "–"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	case a == 0:
		return "0"
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
