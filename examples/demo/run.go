package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend"
	"github.com/cgn-bot/coord/cache"
	"github.com/cgn-bot/coord/health"
	"github.com/cgn-bot/coord/middleware/metrics"
)

// Names the demo uses.
const (
	jobResource = "demo:report"  // the lease of the scheduled job
	eventTopic  = "report.ready" // the event the job publishes
	cacheKey    = "report:latest"
)

// report is what the scheduled job produces: the source of truth lives in
// Redis, each instance keeps a copy in its near cache.
type report struct {
	Tick  int64  `json:"tick"`
	Fence int64  `json:"fence"`
	By    string `json:"by"`
}

// printer writes timestamped lines from any goroutine.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (p *printer) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%6.2fs  %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

// truthStore holds the source of truth of the report: the Redis backend's
// JSON keys, or with no Redis, a map that the instances share.
type truthStore interface {
	GetJSON(ctx context.Context, key string, v any) error
	SetJSON(ctx context.Context, key string, v any, ttl time.Duration) error
}

// memStore is the source of truth without Redis: JSON values in a map,
// shared by the instances of one process. It keeps no TTL: a run is short.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

// GetJSON decodes the value at key into v, or returns coord.ErrNotFound.
func (s *memStore) GetJSON(_ context.Context, key string, v any) error {
	s.mu.Lock()
	raw, ok := s.m[key]
	s.mu.Unlock()
	if !ok {
		return coord.ErrNotFound
	}
	return json.Unmarshal(raw, v)
}

// SetJSON stores v, as JSON, at key.
func (s *memStore) SetJSON(_ context.Context, key string, v any, _ time.Duration) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string][]byte)
	}
	s.m[key] = raw
	return nil
}

// instance is one coord instance: its backend, its near cache and what it
// has seen of the others' events.
type instance struct {
	name  string
	b     *backend.Opened
	store truthStore // the source of truth: the same Redis backend, or the shared memStore
	cache *cache.Cache[report]

	eventsSeen atomic.Uint64
	lastEvent  atomic.Int64 // tick of the last report.ready received
}

// demo is one run.
type demo struct {
	cfg      config
	p        *printer
	insts    []*instance
	truthKey string
	reg      *prometheus.Registry
	base     string // http://127.0.0.1:port of /healthz and /metrics

	// Without Redis: the memory hub the instances share, and the source
	// of truth.
	opener backend.Opener
	mem    memStore

	// Counters for the summary, written by the tick loop only.
	ticks, runs, held, done, failed int
	anomalies                       int // ticks where the job did not run exactly once
	fences                          []int64
	coherent, incoherent            int
	slowest                         time.Duration
}

// run runs the demo until ctx ends or cfg.duration passes, writing what
// happens to w.
func run(ctx context.Context, cfg config, w io.Writer) (err error) {
	if cfg.tick <= 0 {
		cfg.tick = time.Second
	}
	if cfg.instances < 1 {
		cfg.instances = 1
	}
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	d := &demo{cfg: cfg, p: &printer{w: w, start: time.Now()}, reg: prometheus.NewRegistry()}
	var runID [4]byte
	_, _ = rand.Read(runID[:])
	d.truthKey = "demo:report:" + hex.EncodeToString(runID[:])

	if cfg.redisURL == "" {
		d.p.say("no -redis: the instances share an in-process memory hub (backend/memory); use -redis URL for a real Redis")
	} else {
		d.p.say("using Redis at %s", redactURL(cfg.redisURL))
	}

	defer func() { err = errors.Join(err, d.closeAll()) }()
	if err := d.open(ctx, cfg.redisURL); err != nil {
		return err
	}
	stopHTTP, err := d.serve(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopHTTP()) }()
	defer d.periodic(ctx)()

	if err := d.sessions(ctx); err != nil {
		return d.quiet(ctx, fmt.Errorf("sessions: %w", err))
	}
	d.rateScene(ctx)
	if err := d.leases(ctx); err != nil {
		return d.quiet(ctx, fmt.Errorf("leases: %w", err))
	}
	if err := d.streams(ctx); err != nil {
		return d.quiet(ctx, fmt.Errorf("streams: %w", err))
	}
	d.loop(ctx)
	d.summary()
	return nil
}

// quiet drops an error caused by the end of the run.
func (d *demo) quiet(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// open opens the instances: each its own go-redis client and coord Redis
// backend (or, when redisURL is empty, its own node on one memory hub),
// wrapped in the metrics middleware, a near cache and an event
// subscription.
func (d *demo) open(ctx context.Context, redisURL string) error {
	raw, kind := redisURL, "own go-redis client, coord Redis backend"
	if raw == "" {
		raw, kind = "mem://demo", "own node on the memory hub"
	}
	mopts := &metrics.Options{
		ResourceLabel: metrics.Allow(jobResource),
		EventLabel:    metrics.Allow(eventTopic),
	}
	for i := range d.cfg.instances {
		name := fmt.Sprintf("demo-%d", i+1)
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("-redis: %w", err)
		}
		q := u.Query()
		// The instance ID carries the run's ID, so two demos on one Redis
		// do not take each other's messages for their own.
		q.Set("instance", name+"-"+d.truthKey[len(d.truthKey)-8:])
		u.RawQuery = q.Encode()
		b, err := d.opener.Open(ctx, backend.Config{URL: u.String(), Registerer: d.reg, Metrics: mopts})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		in := &instance{name: name, b: b, store: &d.mem}
		d.insts = append(d.insts, in)
		if redisURL != "" {
			var c goredis.UniversalClient
			if !coord.As(b, &c) {
				return fmt.Errorf("%s: not a Redis backend", name)
			}
			in.store = redisStore{c}
		}
		in.cache, err = cache.New[report](ctx, b.Invalidator(), &cache.Options{MaxSize: 1000, MaxTTL: time.Minute})
		if err != nil {
			return fmt.Errorf("%s: near cache: %w", name, err)
		}
		_, err = b.Events().Subscribe(ctx, eventTopic, func(e coord.Event) {
			var r report
			if json.Unmarshal(e.Payload, &r) == nil {
				in.eventsSeen.Add(1)
				in.lastEvent.Store(r.Tick)
			}
		})
		if err != nil {
			return fmt.Errorf("%s: subscribe: %w", name, err)
		}
		d.p.say("%s up: %s with metrics, near cache, subscribed to %q (instance ID %s)",
			name, kind, eventTopic, b.InstanceID())
	}
	return nil
}

// closeAll closes the caches and backends (each backend closes its
// go-redis client) and returns every error.
func (d *demo) closeAll() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, in := range d.insts {
		if in.cache != nil {
			if err := in.cache.Close(); err != nil {
				errs = append(errs, fmt.Errorf("%s: close cache: %w", in.name, err))
			}
		}
		if err := in.b.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", in.name, err))
		}
	}
	if len(d.insts) > 0 {
		d.p.say("closed %d instances (leases released, subscriptions ended, clients closed)", len(d.insts))
	}
	return errors.Join(errs...)
}

// serve starts /healthz and /metrics, checks /healthz once, and returns
// a function that stops the server and waits for it.
func (d *demo) serve(ctx context.Context) (func() error, error) {
	ln, err := net.Listen("tcp", d.cfg.listen)
	if err != nil {
		return nil, fmt.Errorf("-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", health.Handler(d.insts[0].b, nil))
	mux.Handle("GET /livez", health.Liveness(d.insts[0].b, nil))
	mux.Handle("GET /readyz", health.Readiness(d.insts[0].b, nil))
	for i, in := range d.insts {
		mux.Handle(fmt.Sprintf("GET /healthz/%d", i+1), health.Handler(in.b, nil))
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	stop := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return err
	}

	port := ln.Addr().(*net.TCPAddr).Port
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	d.base = base
	d.p.say("serving %s/healthz (instance 1; /healthz/N for instance N) and %s/metrics on %s", base, base, ln.Addr())

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	res, err := client.Do(req)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("GET /healthz: %w", err), stop())
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	d.p.say("GET /healthz -> %d %s", res.StatusCode, strings.TrimSpace(string(body)))
	return stop, nil
}

// pick returns the instance i, wrapping around when there are fewer.
func (d *demo) pick(i int) *instance { return d.insts[i%len(d.insts)] }

// sessions shows a session created on one instance, read on another and
// ended everywhere from a third.
func (d *demo) sessions(ctx context.Context) error {
	a, b, c := d.pick(0), d.pick(1), d.pick(2)
	s, err := a.b.Sessions().Create(ctx, "alice", map[string]any{"role": "admin"}, coord.WithIdleTTL(30*time.Minute))
	if err != nil {
		return err
	}
	d.p.say("session: %s logged alice in: session %s (its token stays in alice's cookie, never in logs)", a.name, short(s.Handle))
	got, err := b.b.Sessions().Get(ctx, s.ID)
	if err != nil {
		return err
	}
	var role string
	_ = got.Decode("role", &role)
	d.p.say("session: %s read session %s: user %s, role %s", b.name, short(got.Handle), got.UserID, role)
	phone, err := b.b.Sessions().Create(ctx, "alice", map[string]any{"device": "phone"})
	if err != nil {
		return err
	}
	d.p.say("session: %s logged alice in on a second device: session %s", b.name, short(phone.Handle))
	n, err := c.b.Sessions().DeleteByUser(ctx, "alice")
	if err != nil {
		return err
	}
	d.p.say("session: %s revoked alice everywhere (log out everywhere): %d sessions ended", c.name, n)
	live, err := a.b.Sessions().Exists(ctx, s.ID)
	if err != nil {
		return err
	}
	verdict := "gone, revoke seen by every instance"
	if live {
		verdict = "STILL LIVE"
	}
	d.p.say("session: %s checks alice's first token again: %s", a.name, verdict)
	return nil
}

// loop runs the scheduled job every tick until ctx ends.
func (d *demo) loop(ctx context.Context) {
	t := time.NewTicker(d.cfg.tick)
	defer t.Stop()
	for n := int64(1); ; n++ {
		d.tick(ctx, n)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// outcome is what one instance's attempt at the job did.
type outcome struct {
	name  string
	ran   bool
	held  bool // the lease was held by another instance
	done  bool // another instance had already run this tick
	fence int64
	err   error
}

// tick has every instance try the job at once; one gets the lease and
// runs it; then it checks the caches and the event.
func (d *demo) tick(ctx context.Context, n int64) {
	outs := make([]outcome, len(d.insts))
	var wg sync.WaitGroup
	for i, in := range d.insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = d.job(ctx, in, n)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	d.ticks++
	var winner *outcome
	var others []string
	ran := 0
	for i := range outs {
		o := &outs[i]
		switch {
		case o.ran:
			ran++
			winner = o
			d.runs++
			d.fences = append(d.fences, o.fence)
		case o.held:
			d.held++
			others = append(others, o.name+" found the lease held")
		case o.done:
			d.done++
			others = append(others, o.name+" found tick done")
		default:
			d.failed++
			others = append(others, fmt.Sprintf("%s failed: %v", o.name, o.err))
		}
	}
	if ran != 1 {
		d.anomalies++
		d.p.say("tick %d: the job ran %d times (want exactly 1): %s", n, ran, strings.Join(others, "; "))
		return
	}
	rest := "no other instance"
	if len(others) > 0 {
		rest = strings.Join(others, ", ")
	}
	d.p.say("tick %d: %s ran the scheduled job under lock %q with fence %d; %s", n, winner.name, jobResource, winner.fence, rest)
	if d.runs == 1 {
		d.p.say("        (a fence is larger than every fence before it for this lock; the job stores it with its result and refuses to write over a larger one, so a holder that lost its lease cannot overwrite newer work)")
	}
	d.check(ctx, n, winner.name)
}

// job is one instance's attempt at the scheduled job: under the lease,
// unless this tick was already done, it writes a new report to the
// source of truth (refusing a write whose fence is not above the last
// writer's), invalidates the report in every near cache and announces it.
func (d *demo) job(ctx context.Context, in *instance, n int64) outcome {
	o := outcome{name: in.name}
	err := coord.WithLock(ctx, in.b.Locker(), jobResource, func(ctx context.Context) error {
		lease, ok := coord.LockFromContext(ctx)
		if !ok {
			return errors.New("no lease in WithLock's ctx")
		}
		fence := lease.Fence()
		var last report
		if err := in.store.GetJSON(ctx, d.truthKey, &last); err != nil && !errors.Is(err, coord.ErrNotFound) {
			return err
		}
		if last.Tick >= n {
			o.done = true
			return nil
		}
		if fence <= last.Fence {
			return fmt.Errorf("fence %d is not above the last writer's %d: stale holder, write refused", fence, last.Fence)
		}
		r := report{Tick: n, Fence: fence, By: in.name}
		if err := in.store.SetJSON(ctx, d.truthKey, r, time.Hour); err != nil {
			return err
		}
		if err := in.cache.Delete(ctx, cacheKey); err != nil {
			return err
		}
		if err := in.b.Events().Publish(ctx, eventTopic, r); err != nil {
			return err
		}
		o.ran, o.fence = true, fence
		return nil
	}, coord.WithTTL(5*time.Second), coord.WithRetry(0, 0))
	switch {
	case errors.Is(err, coord.ErrNotAcquired):
		o.held = true
	case err != nil:
		o.err = err
	}
	return o
}

// check waits until every near cache serves the new report and every
// other instance got the event, and says how long that took.
func (d *demo) check(ctx context.Context, n int64, winner string) {
	start := time.Now()
	deadline := start.Add(2 * time.Second)
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	var seen []string
	for {
		seen = seen[:0]
		all := true
		for _, in := range d.insts {
			r, err := in.cache.GetOrLoad(ctx, cacheKey, func(ctx context.Context, _ string) (report, error) {
				var r report
				err := in.store.GetJSON(ctx, d.truthKey, &r)
				return r, err
			})
			if err != nil || r.Tick != n {
				all = false
			}
			seen = append(seen, fmt.Sprintf("%s=tick %d", in.name, r.Tick))
		}
		events := 0
		for _, in := range d.insts {
			if in.name != winner && in.lastEvent.Load() >= n {
				events++
			}
		}
		if all && events == len(d.insts)-1 {
			took := time.Since(start)
			// Requests between updates are served from the near caches.
			for _, in := range d.insts {
				for range 5 {
					in.cache.Get(cacheKey)
				}
			}
			d.coherent++
			d.slowest = max(d.slowest, took)
			d.p.say("tick %d: near caches coherent after %v (%s); event %q reached %d of %d other instances",
				n, took.Round(10*time.Microsecond), strings.Join(seen, ", "), eventTopic, events, len(d.insts)-1)
			return
		}
		if time.Now().After(deadline) {
			d.incoherent++
			d.p.say("tick %d: NOT coherent after 2s (%s); event reached %d of %d", n, strings.Join(seen, ", "), events, len(d.insts)-1)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
	}
}

// summary prints what happened, from the demo's counters, the backends'
// and caches' stats and the metrics registry.
func (d *demo) summary() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	increasing := true
	for i := 1; i < len(d.fences); i++ {
		if d.fences[i] <= d.fences[i-1] {
			increasing = false
		}
	}
	fenceRange := "none"
	if len(d.fences) > 0 {
		fenceRange = fmt.Sprintf("%d..%d", d.fences[0], d.fences[len(d.fences)-1])
		if increasing {
			fenceRange += ", strictly increasing"
		} else {
			fenceRange += ", NOT increasing"
		}
	}
	once := "yes"
	if d.anomalies > 0 || d.runs != d.ticks {
		once = fmt.Sprintf("NO (%d anomalies)", d.anomalies)
	}
	d.p.say("summary: %d ticks, the job ran %d times, once per tick: %s; fences %s", d.ticks, d.runs, once, fenceRange)
	d.p.say("summary: other attempts: %d found the lease held, %d found the tick done, %d failed", d.held, d.done, d.failed)
	var st cache.Stats
	for _, in := range d.insts {
		s := in.cache.Stats()
		st.Hits += s.Hits
		st.Misses += s.Misses
		st.Loads += s.Loads
		st.RemoteInvalidations += s.RemoteInvalidations
		st.Purges += s.Purges
	}
	d.p.say("summary: near caches coherent on %d of %d ticks (slowest %v): %d hits, %d misses, %d loads, %d remote invalidations, %d purges",
		d.coherent, d.coherent+d.incoherent, d.slowest.Round(10*time.Microsecond), st.Hits, st.Misses, st.Loads, st.RemoteInvalidations, st.Purges)
	var pub, recv uint64
	for _, in := range d.insts {
		es := in.b.Events().Stats()
		pub += es.Published
		recv += in.eventsSeen.Load()
	}
	d.p.say("summary: events: %d published, %d received by other instances", pub, recv)
	if n, err := d.insts[0].b.Sessions().Count(ctx); err == nil {
		d.p.say("summary: live sessions: %d", n)
	}
	h := d.insts[0].b.Health(ctx)
	d.p.say("summary: health of %s: %s, %s connection, PING %v", d.insts[0].name, h.Status, h.Connection, h.Latency.Round(time.Microsecond))
	d.p.say("summary: metrics: %s", d.metricsLine())
	d.p.say("summary: %s", d.scrape(ctx))
}

// scrape fetches /metrics as Prometheus would and says what it got.
func (d *demo) scrape(ctx context.Context) string {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.base+"/metrics", nil)
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "GET /metrics failed: " + err.Error()
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return "GET /metrics failed: " + err.Error()
	}
	n := 0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "coord_") {
			n++
		}
	}
	return fmt.Sprintf("GET /metrics -> %d, %d coord_ samples", res.StatusCode, n)
}

// metricsLine reads a few series from the registry.
func (d *demo) metricsLine() string {
	mfs, err := d.reg.Gather()
	if err != nil {
		return "gather: " + err.Error()
	}
	var parts []string
	for _, mf := range mfs {
		name := mf.GetName()
		switch name {
		case "coord_distributed_lock_acquisitions_total", "coord_distributed_cache_invalidations_sent_total",
			"coord_distributed_shard_events_sent_total", "coord_distributed_cache_messages_received_total":
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			parts = append(parts, fmt.Sprintf("%s{%s}=%g", strings.TrimPrefix(name, "coord_"), strings.Join(labels, ","), m.GetCounter().GetValue()))
		}
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d series; %s", len(mfs), strings.Join(parts, " "))
}

// short shortens a session handle for display.
func short(h string) string {
	if len(h) > 8 {
		return h[:8] + "…"
	}
	return h
}

// redactURL hides the password of a URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// redisStore is the source of truth on Redis: JSON values under plain
// keys, through the backend's client.
type redisStore struct{ c goredis.UniversalClient }

// GetJSON reads key's JSON value into v; a missing key is
// [coord.ErrNotFound].
func (s redisStore) GetJSON(ctx context.Context, key string, v any) error {
	raw, err := s.c.Get(ctx, key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return fmt.Errorf("%s: %w", key, coord.ErrNotFound)
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// SetJSON stores v as JSON under key for ttl.
func (s redisStore) SetJSON(ctx context.Context, key string, v any, ttl time.Duration) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.c.Set(ctx, key, raw, ttl).Err()
}
