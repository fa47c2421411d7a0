// Command worker is one instance of the robustness harness's workload: it
// opens a coord Redis backend through its proxy and, until told to stop,
// takes leases (coord.WithLock, and Acquire with auto-renew then Release)
// and writes to the driver's checking store with their fences, takes read
// and write leases, semaphore permits and leaderships (coord.RunElected),
// appends to a stream and consumes it in a group, updates and
// reads fields of shared sessions, creates and deletes sessions of shared
// users, reads keys through a near cache over a versioned source of truth
// that it also writes and invalidates, publishes and receives events, and
// samples Health. Every operation is written to its history file.
//
// The driver talks to it over stdin and stdout: it prints "ready" once
// open; "stop" on stdin stops the workload, after which it waits for the
// stream group to be drained and for its released leases to end, prints
// "quiesced", and on "exit" (or end of input) closes the backend and
// exits. Its history is appended to, one whole line per op as it
// happens, so that a worker killed and started again (kill-worker) goes
// on in the same file.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/cache"
	"github.com/cgn-bot/coord/reliability/robustness"
)

func main() {
	cfgPath := flag.String("config", "", "path of the worker's JSON configuration")
	flag.Parse()
	if err := run(*cfgPath); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// quiet is a go-redis logger that discards: failed dials during faults are
// expected, and what matters is in the history.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// worker is one worker's state.
type worker struct {
	cfg   robustness.WorkerConfig
	rec   *robustness.Recorder
	b     *coordredis.Backend
	cache *cache.Cache[int64]
	http  *http.Client
	rng   *lockedRand
	seq   atomic.Int64
	// monitors are goroutines that watch released leases end.
	monitors sync.WaitGroup
}

func run(cfgPath string) error {
	goredis.SetLogger(quiet{})
	cfg, err := robustness.ReadConfig(cfgPath)
	if err != nil {
		return err
	}
	rec, err := robustness.OpenRecorder(cfg.History, cfg.ID)
	if err != nil {
		return err
	}
	defer rec.Close()
	client := newClient(cfg)
	defer client.Close()
	b, err := coordredis.New(client, &coordredis.Options{Prefix: cfg.Prefix, InstanceID: fmt.Sprintf("w%d", cfg.ID)})
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	}()
	ctx := context.Background()
	nc, err := cache.New[int64](ctx, b.Invalidator(), &cache.Options{MaxTTL: cfg.CacheMaxTTL})
	if err != nil {
		return err
	}
	defer nc.Close()
	w := &worker{
		cfg:   cfg,
		rec:   rec,
		b:     b,
		cache: nc,
		http:  &http.Client{Timeout: 5 * time.Second},
		rng:   &lockedRand{r: rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(cfg.ID)))},
	}
	// Lease names and session values stay unique, and event sequence
	// numbers increasing, across a restart of the worker (kill-worker).
	w.seq.Store(time.Now().UnixMicro())
	sub, err := w.subscribeEvents(ctx)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	var streamSub coord.Subscription
	if cfg.Streams && !cfg.CacheOnly {
		if streamSub, err = w.consume(ctx); err != nil {
			return err
		}
		defer streamSub.Unsubscribe()
	}
	var observer *observer
	if cfg.Election != "" && !cfg.CacheOnly {
		if observer, err = w.observe(ctx); err != nil {
			return err
		}
		defer observer.sub.Unsubscribe()
	}

	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var loops sync.WaitGroup
	all := []func(context.Context){w.sessionLoop, w.sessionLifeLoop, w.readLoop, w.publishLoop, w.healthLoop}
	if !cfg.CacheOnly {
		all = append(all, w.sourceLoop)
		// More holders than resources, so that leases are released with
		// waiters queued, in this instance and in others.
		all = append(all, w.withLockLoop, w.withLockLoop, w.acquireLoop, w.acquireLoop, w.acquireLoop)
		if len(cfg.RWResources) > 0 {
			all = append(all, w.rwLoop, w.rwLoop)
		}
		if len(cfg.Semaphores) > 0 {
			all = append(all, w.semLoop, w.semLoop)
		}
		if cfg.Election != "" {
			all = append(all, w.electLoop)
		}
		if cfg.Streams {
			all = append(all, w.appendLoop)
		}
	}
	for _, loop := range all {
		loops.Go(func() { loop(wctx) })
	}
	fmt.Println("ready")

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() && in.Text() != "stop" {
	}
	stop()
	loops.Wait()
	if streamSub != nil {
		w.drain(streamSub)
	}
	if observer != nil {
		w.settle(observer)
	}
	w.monitors.Wait()
	w.quiesce()
	if err := rec.Flush(); err != nil {
		return err
	}
	fmt.Println("quiesced")
	for in.Scan() && in.Text() != "exit" {
	}
	return nil
}

// newClient makes the worker's go-redis client: a cluster client or a
// single one, dialing each node through the worker's proxy.
func newClient(cfg robustness.WorkerConfig) goredis.UniversalClient {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if p, ok := cfg.Nodes[addr]; ok {
			addr = p
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	addrs := make([]string, 0, len(cfg.Nodes))
	for a := range cfg.Nodes {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	name := fmt.Sprintf("robustness-w%d", cfg.ID)
	if cfg.MasterName != "" {
		return goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName: cfg.MasterName, SentinelAddrs: cfg.Sentinels, Dialer: dial, ClientName: name,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
			MaxRetries: -1, DisableIdentity: true,
		})
	}
	if cfg.Cluster {
		return goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs: addrs, Dialer: dial, ClientName: name,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
			MaxRetries: -1, DisableIdentity: true,
		})
	}
	return goredis.NewClient(&goredis.Options{
		Addr: addrs[0], Dialer: dial, ClientName: name,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		MaxRetries:      -1, // a timed-out command is an error, not sent again
		DisableIdentity: true,
	})
}

// quiesce waits, after the workload stopped, for the leases this instance
// still holds to end (every one was released or its release failed), for
// two TTLs plus a second, and records how many are left.
func (w *worker) quiesce() {
	call := robustness.Now()
	deadline := time.Now().Add(2*w.cfg.LeaseTTL + time.Second)
	for len(w.b.Locker().Held()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	w.rec.Add(robustness.Op{Kind: robustness.KindHeld, Num: int64(len(w.b.Locker().Held())), Call: call, Return: robustness.Now()})
}

// lockedRand is a seeded source shared by the loops.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func (l *lockedRand) IntN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}

func pick[T any](w *worker, s []T) T { return s[w.rng.IntN(len(s))] }

// pause waits d, or less if ctx ends; it paces the workload.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// errString is err's text for the history, marked when coord returned an
// error it must not (see robustness.ErrString).
func errString(err error) string { return robustness.ErrString(err) }

// ---- leases ----

// waitDelay is the longest a waiter waits between tries when no release
// wakes it: long, so that waiters stay queued through a fault that fails
// commands (such as OOM) until a release hands them the lease.
const waitDelay = 2 * time.Second

// leaseSlot receives the lease WithLock acquired, through the capturing
// Locker below, so that fn can use its fence and the release is timed.
type leaseSlot struct {
	lock            coord.Lock
	relCall, relRet int64
	relErr          error
	acqCall, acqRet int64
}

type slotKey struct{}

// capturing wraps a Locker so that the Lock Acquire returns is put in the
// leaseSlot of the ctx, and its Release is timed.
type capturing struct{ coord.Locker }

func (c capturing) Acquire(ctx context.Context, resource string, opts ...coord.LockOption) (coord.Lock, error) {
	slot, _ := ctx.Value(slotKey{}).(*leaseSlot)
	if slot != nil {
		slot.acqCall = robustness.Now()
	}
	l, err := c.Locker.Acquire(ctx, resource, opts...)
	if slot != nil {
		slot.acqRet = robustness.Now()
		if err == nil {
			slot.lock = l
			l = timedLock{Lock: l, slot: slot}
		}
	}
	return l, err
}

type timedLock struct {
	coord.Lock
	slot *leaseSlot
}

func (t timedLock) Release(ctx context.Context) error {
	t.slot.relCall = robustness.Now()
	err := t.Lock.Release(ctx)
	t.slot.relRet, t.slot.relErr = robustness.Now(), err
	return err
}

// work writes to the checking store with the lease's fence two or three
// times, checking before each write that the lease is still live. It
// returns the last time the lease was seen live, and the counts.
func (w *worker) work(ctx context.Context, lease string, l coord.Lock) (live int64, writes, rejected int) {
	n := 2 + w.rng.IntN(2)
	for i := 0; i < n; i++ {
		select {
		case <-l.Done():
			return live, writes, rejected
		case <-ctx.Done():
			return live, writes, rejected
		default:
		}
		live = robustness.Now()
		ok, err := w.fencedWrite(ctx, l.Resource(), l.Fence(), lease)
		if err != nil {
			return live, writes, rejected
		}
		writes++
		if !ok {
			rejected++
			return live, writes, rejected
		}
		pause(ctx, time.Duration(30+w.rng.IntN(70))*time.Millisecond)
	}
	return live, writes, rejected
}

func (w *worker) fencedWrite(ctx context.Context, res string, fence int64, lease string) (bool, error) {
	q := url.Values{"res": {res}, "fence": {strconv.FormatInt(fence, 10)}, "lease": {lease}}
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, w.cfg.StoreURL+"/write?"+q.Encode(), nil)
	if err != nil {
		return false, err
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return false, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}

func (w *worker) leaseName() string { return fmt.Sprintf("w%d-l%d", w.cfg.ID, w.seq.Add(1)) }

// withLockLoop takes leases with coord.WithLock.
func (w *worker) withLockLoop(ctx context.Context) {
	locker := capturing{w.b.Locker()}
	for ctx.Err() == nil {
		res := pick(w, w.cfg.Resources)
		slot := &leaseSlot{}
		name := w.leaseName()
		op := robustness.Op{Kind: robustness.KindLease, Mode: "withlock", Key: res, Lease: name}
		actx, cancel := context.WithTimeout(context.WithValue(ctx, slotKey{}, slot), 3*w.cfg.LeaseTTL)
		err := coord.WithLock(actx, locker, res, func(fctx context.Context) error {
			op.Live, op.Writes, op.Rejections = w.work(fctx, name, slot.lock)
			return nil
		}, coord.WithTTL(w.cfg.LeaseTTL), coord.WithWait(waitDelay))
		cancel()
		op.Call, op.Return = slot.acqCall, slot.acqRet
		if slot.lock == nil {
			op.Err = errString(err)
		} else {
			op.Fence = slot.lock.Fence()
			op.RelCall, op.RelReturn, op.RelErr = slot.relCall, slot.relRet, errString(slot.relErr)
			if slot.relErr != nil {
				w.watchEnd(name, res, slot.lock)
			}
		}
		w.rec.Add(op)
		pause(ctx, time.Duration(w.rng.IntN(50))*time.Millisecond)
	}
}

// acquireLoop takes leases with Acquire and auto-renew, then Release.
func (w *worker) acquireLoop(ctx context.Context) {
	locker := w.b.Locker()
	for ctx.Err() == nil {
		res := pick(w, w.cfg.Resources)
		name := w.leaseName()
		op := robustness.Op{Kind: robustness.KindLease, Mode: "acquire", Key: res, Lease: name}
		actx, cancel := context.WithTimeout(ctx, 2*w.cfg.LeaseTTL)
		op.Call = robustness.Now()
		l, err := locker.Acquire(actx, res, coord.WithTTL(w.cfg.LeaseTTL), coord.WithAutoRenew(), coord.WithWait(waitDelay))
		op.Return = robustness.Now()
		cancel()
		if err != nil {
			op.Err = errString(err)
			w.rec.Add(op)
			pause(ctx, 50*time.Millisecond)
			continue
		}
		op.Fence = l.Fence()
		op.Live, op.Writes, op.Rejections = w.work(ctx, name, l)
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		op.RelCall = robustness.Now()
		rerr := l.Release(rctx)
		op.RelReturn = robustness.Now()
		rcancel()
		op.RelErr = errString(rerr)
		if rerr != nil {
			w.watchEnd(name, res, l)
		}
		w.rec.Add(op)
		pause(ctx, time.Duration(w.rng.IntN(50))*time.Millisecond)
	}
}

// watchEnd checks that a lease whose Release failed still ends: its Done
// must close within two TTLs and a second (its renewals stop and its
// deadline passes). Otherwise it records a KindImmortal op.
func (w *worker) watchEnd(name, res string, l coord.Lock) {
	since := robustness.Now()
	w.monitors.Go(func() {
		bound := 2*w.cfg.LeaseTTL + time.Second
		t := time.NewTimer(bound)
		defer t.Stop()
		select {
		case <-l.Done():
		case <-t.C:
			w.rec.Add(robustness.Op{Kind: robustness.KindImmortal, Key: res, Lease: name, Fence: l.Fence(), Call: since, Return: robustness.Now(),
				Err: fmt.Sprintf("Done still open %v after the failed Release", bound)})
		}
	})
}

// ---- sessions ----

// sessionLoop updates, deletes and reads fields of the shared sessions.
func (w *worker) sessionLoop(ctx context.Context) {
	st := w.b.Sessions()
	for ctx.Err() == nil {
		i := w.rng.IntN(len(w.cfg.Sessions))
		id, field := w.cfg.Sessions[i], pick(w, w.cfg.Fields)
		op := robustness.Op{Key: "s" + strconv.Itoa(i), Field: field}
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		switch r := w.rng.IntN(20); {
		case r < 8:
			op.Kind = robustness.KindSessPut
			op.Value = fmt.Sprintf("w%d-%d", w.cfg.ID, w.seq.Add(1))
			op.Call = robustness.Now()
			w.rec.Add(robustness.Op{Kind: robustness.KindSessCall, Key: op.Key, Field: field, Value: op.Value, Call: op.Call})
			err := st.Update(octx, id, map[string]any{field: op.Value})
			op.Return, op.Err = robustness.Now(), errString(err)
		case r < 10:
			op.Kind = robustness.KindSessPut
			op.Call = robustness.Now()
			w.rec.Add(robustness.Op{Kind: robustness.KindSessCall, Key: op.Key, Field: field, Call: op.Call})
			err := st.Update(octx, id, map[string]any{field: nil})
			op.Return, op.Err = robustness.Now(), errString(err)
		default:
			op.Kind = robustness.KindSessGet
			op.Call = robustness.Now()
			s, err := st.Get(octx, id)
			op.Return, op.Err = robustness.Now(), errString(err)
			if err == nil {
				op.Found = true
				var v string
				if raw, ok := s.Data[field]; ok {
					if jerr := json.Unmarshal(raw, &v); jerr != nil {
						op.Err = "undecodable field: " + jerr.Error()
					}
				}
				op.Value = v
			} else if errors.Is(err, coord.ErrNotFound) {
				op.Err = ""
				op.Found = false
			}
		}
		cancel()
		if ctx.Err() != nil && op.Err != "" {
			break // cancelled by the stop, not by a fault
		}
		w.rec.Add(op)
		pause(ctx, time.Duration(10+w.rng.IntN(40))*time.Millisecond)
	}
}

// sessionLifeLoop creates sessions for the shared users and deletes them.
func (w *worker) sessionLifeLoop(ctx context.Context) {
	st := w.b.Sessions()
	var live []string
	for ctx.Err() == nil {
		op := robustness.Op{Kind: robustness.KindSessLife}
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		op.Call = robustness.Now()
		if len(live) < 3 && w.rng.IntN(2) == 0 {
			user := pick(w, w.cfg.Users)
			op.Key, op.Value = user, "create"
			s, err := st.Create(octx, user, map[string]any{"w": w.cfg.ID})
			op.Err = errString(err)
			if err == nil {
				live = append(live, s.ID)
			}
		} else if len(live) > 0 {
			op.Value = "delete"
			err := st.Delete(octx, live[0])
			op.Err = errString(err)
			if err == nil || errors.Is(err, coord.ErrNotFound) {
				live = live[1:]
			}
		}
		op.Return = robustness.Now()
		cancel()
		w.rec.Add(op)
		pause(ctx, time.Duration(50+w.rng.IntN(100))*time.Millisecond)
	}
}

// ---- near cache ----

func (w *worker) load(ctx context.Context, key string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.cfg.StoreURL+"/source?key="+url.QueryEscape(key), nil)
	if err != nil {
		return 0, err
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// readLoop reads keys through the near cache.
func (w *worker) readLoop(ctx context.Context) {
	for ctx.Err() == nil {
		key := pick(w, w.cfg.Keys)
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		op := robustness.Op{Kind: robustness.KindRead, Key: key, Call: robustness.Now()}
		v, err := w.cache.GetOrLoad(octx, key, w.load)
		op.Return, op.Num, op.Err = robustness.Now(), v, errString(err)
		cancel()
		if ctx.Err() != nil && err != nil {
			break
		}
		w.rec.Add(op)
		pause(ctx, time.Duration(5+w.rng.IntN(20))*time.Millisecond)
	}
}

// sourceLoop writes new versions to the source of truth and invalidates
// them (retrying the invalidation until it is sent). The op returns when
// the invalidation was sent.
func (w *worker) sourceLoop(ctx context.Context) {
	for ctx.Err() == nil {
		key := pick(w, w.cfg.Keys)
		op := robustness.Op{Kind: robustness.KindSource, Key: key, Call: robustness.Now()}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.StoreURL+"/source?key="+url.QueryEscape(key), nil)
		if err != nil {
			return
		}
		resp, err := w.http.Do(req)
		if err != nil {
			return
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		op.Num, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		for {
			octx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err = w.cache.Delete(octx, key)
			cancel()
			if err == nil || ctx.Err() != nil {
				break
			}
			pause(ctx, 50*time.Millisecond)
		}
		op.Return, op.Err = robustness.Now(), errString(err)
		w.rec.Add(op)
		pause(ctx, time.Duration(100+w.rng.IntN(100))*time.Millisecond)
	}
}

// ---- events and health ----

type eventPayload struct {
	W   int   `json:"w"`
	Seq int64 `json:"seq"`
}

func (w *worker) subscribeEvents(ctx context.Context) (coord.Subscription, error) {
	return w.b.Events().Subscribe(ctx, "robustness", func(e coord.Event) {
		var p eventPayload
		op := robustness.Op{Kind: robustness.KindEvent, Call: robustness.Now(), Return: robustness.Now()}
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			op.Err = "undecodable event: " + err.Error()
		}
		op.Key, op.Num = strconv.Itoa(p.W), p.Seq
		w.rec.Add(op)
	})
}

func (w *worker) publishLoop(ctx context.Context) {
	seq := time.Now().UnixMicro() // increasing across a restart of the worker
	for ctx.Err() == nil {
		seq++
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_ = w.b.Events().Publish(octx, "robustness", eventPayload{W: w.cfg.ID, Seq: seq})
		cancel()
		pause(ctx, 100*time.Millisecond)
	}
}

func (w *worker) healthLoop(ctx context.Context) {
	for ctx.Err() == nil {
		octx, cancel := context.WithTimeout(ctx, time.Second)
		call := robustness.Now()
		h := w.b.Health(octx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		w.rec.Add(robustness.Op{Kind: robustness.KindHealth, Value: string(h.Status), Err: h.Error, Call: call, Return: robustness.Now()})
		pause(ctx, 250*time.Millisecond)
	}
}
