package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// results holds every round's metrics, by test and contender.
type results struct {
	rounds int
	m      map[string]map[string][]metrics // test -> contender -> per round (nil when failed)
	errs   []string
}

func newResults(tests []*test, rounds int) *results {
	r := &results{rounds: rounds, m: map[string]map[string][]metrics{}}
	for _, t := range tests {
		r.m[t.id] = map[string][]metrics{}
		for _, c := range t.contenders {
			r.m[t.id][c] = make([]metrics, rounds)
		}
	}
	return r
}

func (r *results) add(test, contender string, round int, m metrics) {
	r.m[test][contender][round] = m
}

func (r *results) fail(test, contender string, round int, err error) {
	r.errs = append(r.errs, fmt.Sprintf("round %d %s/%s: %v", round+1, test, contender, err))
}

// values returns the per-round values of a metric (NaN for a missing
// round).
func (r *results) values(test, contender, key string) []float64 {
	out := make([]float64, r.rounds)
	for i, m := range r.m[test][contender] {
		v, ok := m[key]
		if m == nil || !ok {
			v = math.NaN()
		}
		out[i] = v
	}
	return out
}

// ratios returns the per-round ratios contender/base of a metric.
func (r *results) ratios(test, contender, base, key string) []float64 {
	a, b := r.values(test, contender, key), r.values(test, base, key)
	out := make([]float64, r.rounds)
	for i := range out {
		out[i] = a[i] / b[i]
		if b[i] == 0 {
			out[i] = math.NaN()
		}
	}
	return out
}

// env describes the machine and the versions.
type env struct {
	started            time.Time
	nproc              int
	cpu                string
	goVersion          string
	redisVersion       string
	modules            []string
	loadStart, loadEnd string
	elapsed            time.Duration
}

func describe(ctx context.Context, srv *server) (*env, error) {
	e := &env{started: time.Now().UTC(), nproc: runtime.NumCPU(), goVersion: runtime.Version(), cpu: cpuModel()}
	c := srv.newClient()
	defer c.Close()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return nil, fmt.Errorf("INFO server: %w", err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			e.redisVersion = v
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/redis/go-redis/v9", "github.com/go-redsync/redsync/v4", "github.com/bsm/redislock":
				e.modules = append(e.modules, d.Path+" "+d.Version)
			case "github.com/cgn-bot/coord":
				e.modules = append(e.modules, d.Path+" (this repository, commit "+coordRev+")")
			}
		}
	}
	return e, nil
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func report(w io.Writer, cfg config, e *env, tests []*test, r *results) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("## coordbench %s", e.started.Format("2006-01-02 15:04 UTC"))
	p("")
	p("- machine: %d CPUs (`nproc`), %s; load average %s at the start of the rounds, %s at the end", e.nproc, e.cpu, e.loadStart, e.loadEnd)
	p("- Go %s, GOMAXPROCS %d; redis-server %s on 127.0.0.1 (no persistence)", strings.TrimPrefix(e.goVersion, "go"), runtime.GOMAXPROCS(0), e.redisVersion)
	for _, m := range e.modules {
		p("- %s", m)
	}
	p("- %d interleaved rounds, %v per contender per test, %d goroutines; measured for %v; figures are medians over the rounds, "+
		"ratios the median of the per-round ratios (so a ratio may differ from the ratio of the two medians)",
		cfg.rounds, cfg.duration, cfg.goroutines, e.elapsed.Round(time.Second))
	p("")

	p("### Targets (issue 7)")
	p("")
	p("| target | measured | result |")
	p("|---|---:|:---:|")
	for _, t := range append(targets(cfg), leaseTargets(cfg)...) {
		if cfg.only != nil && !cfg.selected(t.test, t.contender) {
			continue
		}
		if _, ok := r.m[t.test]; !ok {
			continue
		}
		var v float64
		var shown string
		switch {
		case t.ratio:
			base := testByID(tests, t.test).contenders[0]
			vs := r.ratios(t.test, t.contender, base, t.metric)
			v = median(vs)
			if t.worst {
				v = worst(vs, !t.atMost)
			}
			shown = num(v) + "×"
		default:
			vs := r.values(t.test, t.contender, t.metric)
			v = median(vs)
			if t.worst {
				v = worst(vs, !t.atMost)
			}
			shown = num(v) + t.unit
		}
		verdict := "MISS"
		if !math.IsNaN(v) && ((t.atMost && v <= t.limit) || (!t.atMost && v >= t.limit)) {
			verdict = "PASS"
		}
		if math.IsNaN(v) {
			verdict = "n/a"
		}
		p("| %s | %s | %s |", t.desc, shown, verdict)
	}
	p("")

	for _, t := range tests {
		var cs []string
		for _, c := range t.contenders {
			if cfg.selected(t.id, c) {
				cs = append(cs, c)
			}
		}
		if len(cs) == 0 {
			continue
		}
		base := t.contenders[0]
		p("### %s", t.title)
		p("")
		if t.note != "" {
			p("%s", t.note)
			p("")
		}
		head := "| metric |"
		sep := "|---|"
		for _, c := range cs {
			head += " " + c + " |"
			sep += "---:|"
		}
		var ratioCs []string
		for _, c := range cs {
			if c != base && cfg.selected(t.id, base) {
				ratioCs = append(ratioCs, c)
				head += " " + c + "/" + base + " |"
				sep += "---:|"
			}
		}
		p("%s", head)
		p("%s", sep)
		for _, d := range t.metrics {
			row := "| " + d.label
			if d.worst {
				row += " (worst round)"
			}
			row += " |"
			for _, c := range cs {
				vs := r.values(t.id, c, d.key)
				cell := num(median(vs))
				if d.worst {
					cell += " (" + num(worst(vs, d.low)) + ")"
				}
				row += " " + cell + " |"
			}
			for _, c := range ratioCs {
				cell := ""
				if d.ratio {
					cell = num(median(r.ratios(t.id, c, base, d.key))) + "×"
				}
				row += " " + cell + " |"
			}
			p("%s", row)
		}
		p("")
	}
	if len(r.errs) > 0 {
		p("### Errors")
		p("")
		for _, e := range r.errs {
			p("- %s", e)
		}
		p("")
	}
}

func testByID(tests []*test, id string) *test {
	for _, t := range tests {
		if t.id == id {
			return t
		}
	}
	return nil
}
