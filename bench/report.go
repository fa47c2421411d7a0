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
			case "github.com/redis/go-redis/v9", "github.com/redis/rueidis", "github.com/go-redsync/redsync/v4", "github.com/bsm/redislock":
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

	p("### Targets")
	p("")
	p("| target | measured | result |")
	p("|---|---:|:---:|")
	for _, t := range append(targets(cfg), leaseTargets(cfg)...) {
		o, ok := t.eval(cfg, tests, r)
		if !ok {
			continue
		}
		p("| %s | %s | %s |", t.desc, o.shown, o.verdict())
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
		var ratioCs, bases []string
		for _, c := range cs {
			if c != base && cfg.selected(t.id, base) {
				ratioCs = append(ratioCs, c)
				bases = append(bases, base)
				head += " " + c + "/" + base + " |"
				sep += "---:|"
			}
		}
		for _, v := range t.vs {
			if cfg.selected(t.id, v) && cfg.selected(t.id, "coord") {
				ratioCs = append(ratioCs, "coord")
				bases = append(bases, v)
				head += " coord/" + v + " |"
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
			for i, c := range ratioCs {
				cell := ""
				if d.ratio {
					cell = num(median(r.ratios(t.id, c, bases[i], d.key))) + "×"
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

// outcome is a target's figure in one run.
type outcome struct {
	v     float64
	shown string
	pass  bool
}

func (o outcome) verdict() string {
	switch {
	case math.IsNaN(o.v):
		return "n/a"
	case o.pass:
		return "PASS"
	}
	return "MISS"
}

// eval judges target t on one run's results; false when the run did not
// measure it.
func (t target) eval(cfg config, tests []*test, r *results) (outcome, bool) {
	base := t.versus
	if base == "" {
		if tt := testByID(tests, t.test); tt != nil {
			base = tt.contenders[0]
		}
	}
	if !cfg.selected(t.test, t.contender) || (t.ratio && !cfg.selected(t.test, base)) {
		return outcome{}, false
	}
	if _, ok := r.m[t.test]; !ok {
		return outcome{}, false
	}
	var vs []float64
	unit := t.unit
	if t.ratio {
		vs = r.ratios(t.test, t.contender, base, t.metric)
		unit = "×"
	} else {
		vs = r.values(t.test, t.contender, t.metric)
	}
	v := median(vs)
	if t.worst {
		v = worst(vs, !t.atMost)
	}
	return outcome{v: v, shown: num(v) + unit, pass: !math.IsNaN(v) && ((t.atMost && v <= t.limit) || (!t.atMost && v >= t.limit))}, true
}

// higherBetter reports whether a larger value of metric key is better
// (a rate).
func higherBetter(key string) bool { return strings.HasSuffix(key, "/s") }

// summary prints, over several runs, each target's figure in every run,
// the worst of them and their spread, and each test's headline ratios
// (its first metric, every contender against the baseline and the
// test's other baselines): the median of each run, the worst single
// round of all runs and the spread of the run medians.
func summary(w io.Writer, cfg config, runs []*runResult) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	n := len(runs)
	first := runs[0]
	p("# Summary of %d runs", n)
	p("")
	for i, rr := range runs {
		p("- run %d: %s, load average %s at the start, %s at the end, measured for %v",
			i+1, rr.env.started.Format("2006-01-02 15:04 UTC"), rr.env.loadStart, rr.env.loadEnd, rr.env.elapsed.Round(time.Second))
	}
	p("- %d interleaved rounds per run, %v per cell; coord at commit %s", cfg.rounds, cfg.duration, coordRev)
	p("")
	head, sep := "", ""
	for i := range n {
		head += fmt.Sprintf(" run %d |", i+1)
		sep += "---:|"
	}
	p("### Targets over the runs")
	p("")
	p("A target passes when it passes in every run; worst = the worst run's figure (a target judged on the worst round is judged so in each run).")
	p("")
	p("| target |%s worst | spread | result |", head)
	p("|---|%s---:|---:|:---:|", sep)
	for _, t := range targets(cfg) {
		row := "| " + t.desc + " |"
		var vs []float64
		pass, seen := true, false
		for _, rr := range runs {
			o, ok := t.eval(cfg, rr.tests, rr.res)
			if !ok {
				row += " |"
				vs = append(vs, math.NaN())
				continue
			}
			seen = true
			row += " " + o.shown + " |"
			vs = append(vs, o.v)
			pass = pass && o.pass
		}
		if !seen {
			continue
		}
		unit := t.unit
		if t.ratio {
			unit = "×"
		}
		verdict := "MISS"
		if pass {
			verdict = "PASS"
		}
		p("%s %s | %s | %s |", row, num(worst(vs, !t.atMost))+unit, runSpread(vs, unit), verdict)
	}
	p("")
	p("### Headline ratios over the runs")
	p("")
	p("Each test's first metric, as contender/baseline: the median of the per-round ratios in each run, the worst single round of all runs, and the spread (lowest–highest) of the run figures.")
	p("")
	p("| test | metric | ratio |%s worst round | spread |", head)
	p("|---|---|---|%s---:|---:|", sep)
	for _, t := range first.tests {
		d := t.metrics[0]
		base := t.contenders[0]
		type pair struct{ c, b string }
		var pairs []pair
		for _, c := range t.contenders[1:] {
			pairs = append(pairs, pair{c, base})
		}
		for _, v := range t.vs {
			pairs = append(pairs, pair{"coord", v})
		}
		for _, pr := range pairs {
			if !cfg.selected(t.id, pr.c) || !cfg.selected(t.id, pr.b) {
				continue
			}
			row := fmt.Sprintf("| %s | %s | %s/%s |", t.id, d.label, pr.c, pr.b)
			var meds, all []float64
			for _, rr := range runs {
				rs := rr.res.ratios(t.id, pr.c, pr.b, d.key)
				m := median(rs)
				meds = append(meds, m)
				all = append(all, rs...)
				row += " " + num(m) + "× |"
			}
			p("%s %s× | %s |", row, num(worst(all, higherBetter(d.key))), runSpread(meds, "×"))
		}
	}
	p("")
}

// runSpread returns the lowest and highest of vs, ignoring NaNs.
func runSpread(vs []float64, unit string) string {
	lo, hi := worst(vs, true), worst(vs, false)
	if math.IsNaN(lo) {
		return "–"
	}
	return num(lo) + "–" + num(hi) + unit
}
