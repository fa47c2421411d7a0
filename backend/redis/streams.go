package redis

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/wire"
)

// Streams is a [Backend]'s [coord.Streams], on Redis Streams. A stream s
// has the keys, all in the hash slot of "{s}" (one slot per stream, so a
// Cluster serves each stream from one node):
//
//	<prefix>st:{s}          the stream; each entry has one field "e", the
//	                        events' JSON envelope (instanceId, event (the
//	                        stream's name), payload, timestamp, trace)
//	<prefix>st:{s}:dead     its dead letters: fields id, e, n (deliveries), g
//	<prefix>st:{s}:live     ZSET group -> when a consumer of it was last
//	                        active (server ms), for safe trims
//	<prefix>st:{s}:trimmed  entries found trimmed while pending
//
// Each subscription reads with XREADGROUP … BLOCK on a connection of its
// own, never the shared pool's, for as many entries as it has free handler
// slots; Unsubscribe, ctx and Close end the read at once with CLIENT
// UNBLOCK (a server without it, as miniredis, is read with short blocks).
// Entries whose handlers run are kept alive every ClaimAfter/3 by a script
// (XCLAIM … RETRYCOUNT … JUSTID, which counts no delivery); claims,
// dead-letters and the count of entries trimmed while pending are one
// script, run every ClaimAfter/2. Timestamps for ages come from the server
// (TIME). No consumer is ever deleted, so none loses its pending entries.
//
// A Streams is safe for concurrent use by multiple goroutines.
type Streams struct {
	b                 *Backend
	claim, beat, trim *goredis.Script
	now               *goredis.Script // lua/stream_time.lua

	mu     sync.Mutex
	subs   map[*rstreamSub]struct{}
	closed bool
}

var _ coord.Streams = (*Streams)(nil)

// streamState holds a Backend's Streams, made on first use.
type streamState struct {
	mu sync.Mutex
	x  *Streams
}

// streamPart returns the Backend's Streams.
func (b *Backend) streamPart() *Streams {
	b.st.mu.Lock()
	defer b.st.mu.Unlock()
	if b.st.x == nil {
		b.st.x = &Streams{
			b:     b,
			claim: goredis.NewScript(mustLua("stream_claim")),
			beat:  goredis.NewScript(mustLua("stream_beat")),
			trim:  goredis.NewScript(mustLua("stream_trim")),
			now:   goredis.NewScript(mustLua("stream_time")),
			subs:  make(map[*rstreamSub]struct{}),
		}
	}
	return b.st.x
}

// shutdown ends every subscription and waits for their handlers.
func (st *streamState) shutdown(ctx context.Context) error {
	st.mu.Lock()
	x := st.x
	st.mu.Unlock()
	if x == nil {
		return nil
	}
	x.mu.Lock()
	x.closed = true
	subs := make([]*rstreamSub, 0, len(x.subs))
	for s := range x.subs {
		subs = append(subs, s)
	}
	x.mu.Unlock()
	for _, s := range subs {
		s.Unsubscribe()
	}
	for _, s := range subs {
		select {
		case <-s.done:
		case <-ctx.Done():
			return fmt.Errorf("coord/redis: close: waiting for stream handlers: %w", ctx.Err())
		}
	}
	return nil
}

type streamKeys struct{ key, dead, live, trimmed string }

func (x *Streams) keys(stream string) streamKeys {
	k := x.b.keys.prefix + "st:{" + escapeName(stream) + "}"
	return streamKeys{key: k, dead: k + ":dead", live: k + ":live", trimmed: k + ":trimmed"}
}

// checkID reports whether id is "", "-", "<ms>" or "<ms>-<seq>".
func checkID(id string) error {
	if id == "" || id == "-" {
		return nil
	}
	ms, seq, found := strings.Cut(id, "-")
	_, err1 := strconv.ParseUint(ms, 10, 64)
	var err2 error
	if found {
		_, err2 = strconv.ParseUint(seq, 10, 64)
	}
	if err1 != nil || err2 != nil {
		return fmt.Errorf("%w: coord/redis: stream ID %q", coord.ErrInvalid, id)
	}
	return nil
}

// nextID returns the ID right after id ("<ms>-<seq>").
func nextID(id string) string {
	ms, seq, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseUint(seq, 10, 64)
	return ms + "-" + strconv.FormatUint(n+1, 10)
}

func checkCount(count int) error {
	if count < 1 || count > coord.MaxStreamCount {
		return fmt.Errorf("%w: coord/redis: count %d is outside 1..%d", coord.ErrInvalid, count, coord.MaxStreamCount)
	}
	return nil
}

// entryOf decodes an entry's envelope.
func entryOf(stream, id, env string, deliveries int) coord.StreamEntry {
	e := coord.StreamEntry{Stream: stream, ID: id, Deliveries: deliveries}
	if ev, err := wire.DecodeEvent(env); err == nil {
		e.Payload, e.InstanceID, e.Timestamp, e.Trace = ev.Payload, ev.InstanceID, ev.Timestamp, ev.Trace
	}
	return e
}

func envOf(m goredis.XMessage) string {
	s, _ := m.Values["e"].(string)
	return s
}

// Append stores payload at the end of stream (XADD through the backend's
// batcher) and returns the entry's ID.
func (x *Streams) Append(ctx context.Context, stream string, payload any) (string, error) {
	b := x.b
	if err := b.checkOpen(); err != nil {
		return "", err
	}
	if err := driver.ValidateName("stream", stream); err != nil {
		return "", err
	}
	raw, err := encodePayload(payload, b.opts.MaxPayload)
	if err != nil {
		return "", err
	}
	msg := wire.EncodeEvent(b.opts.InstanceID, stream, wire.Payload(raw), time.Now())
	msg = wire.AppendTrace(msg, coord.TraceFrom(ctx))
	cmd := goredis.NewStringCmd(ctx, "XADD", x.keys(stream).key, "*", "e", msg)
	if err := b.fail(ctx, "stream append", b.batch.process(ctx, cmd)); err != nil {
		return "", err
	}
	return cmd.Val(), nil
}

// Range returns up to count entries of stream from the ID from.
func (x *Streams) Range(ctx context.Context, stream, from string, count int) ([]coord.StreamEntry, error) {
	b := x.b
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	if err := driver.ValidateName("stream", stream); err != nil {
		return nil, err
	}
	if err := checkID(from); err != nil {
		return nil, err
	}
	if err := checkCount(count); err != nil {
		return nil, err
	}
	if from == "" {
		from = "-"
	}
	msgs, err := b.client.XRangeN(ctx, x.keys(stream).key, from, "+", int64(count)).Result()
	if err := b.fail(ctx, "stream range", err); err != nil {
		return nil, err
	}
	out := make([]coord.StreamEntry, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, entryOf(stream, m.ID, envOf(m), 0))
	}
	return out, nil
}

// DeadLetters returns up to count of stream's dead letters, oldest first.
func (x *Streams) DeadLetters(ctx context.Context, stream string, count int) ([]coord.StreamEntry, error) {
	b := x.b
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	if err := driver.ValidateName("stream", stream); err != nil {
		return nil, err
	}
	if err := checkCount(count); err != nil {
		return nil, err
	}
	msgs, err := b.client.XRangeN(ctx, x.keys(stream).dead, "-", "+", int64(count)).Result()
	if err := b.fail(ctx, "stream dead letters", err); err != nil {
		return nil, err
	}
	out := make([]coord.StreamEntry, 0, len(msgs))
	for _, m := range msgs {
		id, _ := m.Values["id"].(string)
		ns, _ := m.Values["n"].(string)
		n, _ := strconv.Atoi(ns)
		out = append(out, entryOf(stream, id, envOf(m), n))
	}
	return out, nil
}

// Info reports the state of stream and its groups. Lag comes from the
// server when it keeps it (Redis 7), else from counting (up to 10000).
func (x *Streams) Info(ctx context.Context, stream string) (coord.StreamInfo, error) {
	b := x.b
	if err := b.checkOpen(); err != nil {
		return coord.StreamInfo{}, err
	}
	if err := driver.ValidateName("stream", stream); err != nil {
		return coord.StreamInfo{}, err
	}
	k := x.keys(stream)
	var info coord.StreamInfo
	var length, dead *goredis.IntCmd
	var first, last *goredis.XMessageSliceCmd
	var groups, trimmed *goredis.Cmd
	_, _ = b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		length = p.XLen(ctx, k.key)
		first = p.XRangeN(ctx, k.key, "-", "+", 1)
		last = p.XRevRangeN(ctx, k.key, "+", "-", 1)
		groups = p.Do(ctx, "XINFO", "GROUPS", k.key)
		dead = p.XLen(ctx, k.dead)
		trimmed = p.Do(ctx, "GET", k.trimmed)
		return nil
	})
	for _, c := range []goredis.Cmder{length, first, last, dead} {
		if err := b.fail(ctx, "stream info", c.Err()); err != nil {
			return info, err
		}
	}
	if err := groups.Err(); err != nil && !isNoSuchKey(err) {
		return info, b.fail(ctx, "stream info", err)
	}
	if err := trimmed.Err(); err != nil && !errors.Is(err, goredis.Nil) {
		return info, b.fail(ctx, "stream info", err)
	}
	info.Length = length.Val()
	if m := first.Val(); len(m) == 1 {
		info.FirstID = m[0].ID
	}
	if m := last.Val(); len(m) == 1 {
		info.LastID = m[0].ID
	}
	info.DeadLetters = dead.Val()
	info.TrimmedWhilePending, _ = trimmed.Int64()
	raw, _ := groups.Val().([]any)
	for _, g := range raw {
		gi, entriesRead, lag := groupFields(g)
		if gi.Name == "" {
			continue
		}
		if entriesRead && lag >= 0 {
			gi.Lag = min(lag, info.Length)
		} else {
			from := "-"
			if gi.LastDeliveredID != "" && gi.LastDeliveredID != "0-0" {
				from = nextID(gi.LastDeliveredID)
			}
			c, err := b.client.XRangeN(ctx, k.key, from, "+", 10000).Result()
			if err := b.fail(ctx, "stream info", err); err != nil {
				return info, err
			}
			gi.Lag = int64(len(c))
		}
		if gi.Pending > 0 {
			p, err := b.client.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: k.key, Group: gi.Name, Start: "-", End: "+", Count: 100}).Result()
			if err := b.fail(ctx, "stream info", err); err != nil {
				return info, err
			}
			for _, e := range p {
				gi.OldestPending = max(gi.OldestPending, e.Idle)
			}
		}
		info.Groups = append(info.Groups, gi)
	}
	sort.Slice(info.Groups, func(i, j int) bool { return info.Groups[i].Name < info.Groups[j].Name })
	return info, nil
}

func isNoSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// groupFields reads one group of XINFO GROUPS (RESP2 list or RESP3 map).
func groupFields(g any) (gi coord.StreamGroupInfo, entriesRead bool, lag int64) {
	lag = -1
	set := func(k string, v any) {
		switch k {
		case "name":
			gi.Name, _ = v.(string)
		case "consumers":
			c, _ := v.(int64)
			gi.Consumers = int(c)
		case "pending":
			gi.Pending, _ = v.(int64)
		case "last-delivered-id":
			gi.LastDeliveredID, _ = v.(string)
		case "entries-read":
			_, entriesRead = v.(int64)
		case "lag":
			if l, ok := v.(int64); ok {
				lag = l
			}
		}
	}
	switch f := g.(type) {
	case []any:
		for i := 0; i+1 < len(f); i += 2 {
			k, _ := f[i].(string)
			set(k, f[i+1])
		}
	case map[any]any:
		for k, v := range f {
			ks, _ := k.(string)
			set(ks, v)
		}
	}
	return gi, entriesRead, lag
}

// Trim drops entries of stream as r says, by the server's clock.
func (x *Streams) Trim(ctx context.Context, stream string, r coord.Retention) (int64, error) {
	b := x.b
	if err := b.checkOpen(); err != nil {
		return 0, err
	}
	if err := driver.ValidateName("stream", stream); err != nil {
		return 0, err
	}
	r, err := coord.CheckRetention(r)
	if err != nil {
		return 0, err
	}
	k := x.keys(stream)
	safe := "0"
	if r.Safe {
		safe = "1"
	}
	n, err := x.trim.Run(ctx, b.client, []string{k.key, k.live}, r.MaxLen, r.MaxAge.Milliseconds(), safe, r.GroupTTL.Milliseconds()).Int64()
	if err := b.fail(ctx, "stream trim", err); err != nil {
		return 0, err
	}
	return n, nil
}

// Consume delivers stream's entries to fn as a member of group.
func (x *Streams) Consume(ctx context.Context, stream, group string, fn func(context.Context, coord.StreamEntry) error, opts ...coord.ConsumeOption) (coord.Subscription, error) {
	b := x.b
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	if err := driver.ValidateName("stream", stream); err != nil {
		return nil, err
	}
	if err := driver.ValidateName("group", group); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: coord/redis: nil handler", coord.ErrInvalid)
	}
	o, err := coord.NewConsumeOptions(opts...)
	if err != nil {
		return nil, err
	}
	if o.Consumer == "" {
		o.Consumer = b.opts.InstanceID
	}
	if err := driver.ValidateName("consumer", o.Consumer); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("coord/redis: consume: %w", err)
	}
	s := &rstreamSub{
		x: x, k: x.keys(stream), stream: stream, group: group, o: o, fn: fn,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		slots:    make(chan struct{}, o.Concurrency),
		inflight: make(map[string]int),
	}
	if err := s.createGroup(ctx); err != nil {
		return nil, err
	}
	// The start, on the stream's server clock, read before the
	// subscription can see any entry.
	if s.started, err = x.now.Run(ctx, b.client, []string{s.k.key}).Int64(); err != nil {
		return nil, b.fail(ctx, "stream consume", err)
	}
	if err := s.dial(ctx); err != nil {
		return nil, b.fail(ctx, "stream consume", err)
	}
	s.hctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	x.mu.Lock()
	if x.closed || b.closed.Load() {
		x.mu.Unlock()
		s.cancel()
		s.closeConn()
		return nil, b.checkOpen()
	}
	x.subs[s] = struct{}{}
	x.mu.Unlock()
	stopWatch := context.AfterFunc(ctx, s.Unsubscribe)
	go s.loop(stopWatch)
	return s, nil
}

// rstreamSub is one Consume: a read loop on its own connection, a
// heartbeat goroutine, and a goroutine per running handler.
type rstreamSub struct {
	x             *Streams
	k             streamKeys
	stream, group string
	o             coord.ConsumeOptions
	fn            func(context.Context, coord.StreamEntry) error
	hctx          context.Context
	cancel        context.CancelFunc
	// started is the server's clock (ms) when the subscription started:
	// its consumer's entries pending since before it are its own to take
	// back.
	started int64

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	slots    chan struct{}
	handlers sync.WaitGroup

	mu       sync.Mutex
	inflight map[string]int // running entries: ID -> deliveries

	connMu  sync.Mutex
	node    *goredis.Client // the server the stream is on (its pool sends CLIENT UNBLOCK)
	own     *goredis.Client // a client of one connection, the subscription's own
	conn    *goredis.Conn   // own's connection
	connID  int64
	unblock bool // the server knows CLIENT UNBLOCK
}

var _ coord.Subscription = (*rstreamSub)(nil)

// Unsubscribe ends the subscription; running handlers may finish.
func (s *rstreamSub) Unsubscribe() {
	s.stopOnce.Do(func() {
		close(s.stop)
		s.connMu.Lock()
		node, id, ok := s.node, s.connID, s.unblock
		s.connMu.Unlock()
		if ok && node != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = node.ClientUnblock(ctx, id).Err()
			cancel()
		}
	})
}

// Done is closed once the subscription ended and no handler runs.
func (s *rstreamSub) Done() <-chan struct{} { return s.done }

func (s *rstreamSub) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// createGroup makes the group (and the stream) unless it exists.
func (s *rstreamSub) createGroup(ctx context.Context) error {
	b := s.x.b
	start := "0"
	if s.o.Start == coord.FromLatest {
		start = "$"
	}
	err := b.client.XGroupCreateMkStream(ctx, s.k.key, s.group, start).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return b.fail(ctx, "stream group create", err)
	}
	_ = b.client.XGroupCreateConsumer(ctx, s.k.key, s.group, s.o.Consumer).Err()
	return nil
}

// dial opens the subscription's own connection to the stream's server.
func (s *rstreamSub) dial(ctx context.Context) error {
	var node *goredis.Client
	switch c := s.x.b.client.(type) {
	case *goredis.Client:
		node = c
	case *goredis.ClusterClient:
		n, err := c.MasterForKey(ctx, s.k.key)
		if err != nil {
			return err
		}
		node = n
	default:
		return fmt.Errorf("%w: coord/redis: streams need a *redis.Client or *redis.ClusterClient, not %T", coord.ErrUnsupported, c)
	}
	// A client of its own with one connection: Conn() of node would take
	// one of the shared pool's for as long as the subscription lives.
	o := *node.Options()
	o.PoolSize, o.MinIdleConns, o.MaxIdleConns, o.MaxActiveConns = 1, 0, 1, 1
	own := goredis.NewClient(&o)
	conn := own.Conn()
	id, err := conn.ClientID(ctx).Result()
	var rerr goredis.Error
	if err != nil && !errors.As(err, &rerr) {
		_ = conn.Close()
		_ = own.Close()
		return err
	}
	s.connMu.Lock()
	s.node, s.own, s.conn, s.connID, s.unblock = node, own, conn, id, err == nil
	s.connMu.Unlock()
	if s.stopped() && err == nil {
		_ = node.ClientUnblock(ctx, id).Err() // Unsubscribe came first
	}
	return nil
}

func (s *rstreamSub) closeConn() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conn != nil {
		_ = s.conn.Close()
		_ = s.own.Close()
		s.conn, s.own = nil, nil
	}
	s.unblock = false
}

// acquire takes at least one free handler slot, and every other one free
// now; it returns how many, or 0 once the subscription ends.
func (s *rstreamSub) acquire() int {
	select {
	case s.slots <- struct{}{}:
	case <-s.stop:
		return 0
	}
	k := 1
	for k < cap(s.slots) {
		select {
		case s.slots <- struct{}{}:
			k++
		default:
			return k
		}
	}
	return k
}

func (s *rstreamSub) release(n int) {
	for range n {
		<-s.slots
	}
}

// pause waits d or until the subscription ends.
func (s *rstreamSub) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.stop:
	}
}

func (s *rstreamSub) loop(stopWatch func() bool) {
	x := s.x
	var bg sync.WaitGroup
	beatStop := make(chan struct{})
	bg.Add(1)
	go s.heartbeat(&bg, beatStop)
	defer func() {
		stopWatch()
		s.cancel()
		s.handlers.Wait()
		close(beatStop)
		bg.Wait()
		s.closeConn()
		x.mu.Lock()
		delete(x.subs, s)
		x.mu.Unlock()
		close(s.done)
	}()
	ctx := context.Background()
	own, ownFrom := true, "-"
	claimEvery := max(s.o.ClaimAfter/2, time.Millisecond)
	nextClaim := time.Now().Add(claimEvery)
	backoff := 50 * time.Millisecond
	for {
		k := s.acquire()
		if k == 0 {
			return
		}
		if own || !time.Now().Before(nextClaim) {
			minIdle, from := s.o.ClaimAfter, "-"
			if own {
				minIdle, from = 0, ownFrom
			}
			got, next, err := s.claimOnce(ctx, minIdle, k, own, from)
			if err != nil {
				s.release(k)
				if strings.Contains(err.Error(), "NOGROUP") {
					// The server lost the group (a restart without
					// persistence): make it again.
					err = s.createGroup(ctx)
				}
				if err != nil {
					s.pause(backoff)
				}
				continue
			}
			if own {
				if next == "" {
					own = false
				} else {
					ownFrom = nextID(next)
				}
			} else {
				nextClaim = time.Now().Add(claimEvery)
			}
			if got > 0 || own {
				s.release(k - got)
				continue
			}
		}
		block := min(time.Second, max(time.Until(nextClaim), time.Millisecond))
		s.connMu.Lock()
		conn, unblock := s.conn, s.unblock
		s.connMu.Unlock()
		if !unblock {
			block = min(block, 50*time.Millisecond)
		}
		if conn == nil || s.stopped() {
			s.release(k)
			if s.stopped() {
				return
			}
			if err := s.dial(ctx); err != nil {
				s.pause(backoff)
			}
			continue
		}
		res, err := conn.XReadGroup(ctx, &goredis.XReadGroupArgs{
			Group: s.group, Consumer: s.o.Consumer, Streams: []string{s.k.key, ">"}, Count: int64(k), Block: block,
		}).Result()
		got := 0
		switch {
		case err == nil:
			for _, st := range res {
				for _, m := range st.Messages {
					s.start(entryOf(s.stream, m.ID, envOf(m), 1))
					got++
				}
			}
		case errors.Is(err, goredis.Nil):
		case strings.HasPrefix(err.Error(), "NOGROUP"):
			// The server lost the group (a restart without persistence).
			if s.createGroup(ctx) != nil {
				s.pause(backoff)
			}
		case strings.HasPrefix(err.Error(), "UNBLOCKED"):
		default:
			if !s.stopped() {
				s.closeConn()
				s.pause(backoff)
			}
		}
		s.release(k - got)
	}
}

// claimOnce runs the claim script for up to k entries and starts their
// handlers; it returns how many it started and the last ID it looked at
// ("" when there are no more).
func (s *rstreamSub) claimOnce(ctx context.Context, minIdle time.Duration, k int, own bool, from string) (int, string, error) {
	ownArg := "0"
	if own {
		ownArg = "1"
	}
	k2 := s.k
	var skip []any
	var idle any = minIdle.Milliseconds()
	if own {
		var siblings bool
		skip, siblings = s.x.runningAs(s)
		if siblings {
			// Another subscription of this process consumes under the
			// same name: only entries pending since before the start
			// are s's to take back, and of those not the ones it runs.
			// The script measures "since the start" on the server's
			// clock when it runs (lua/stream_claim.lua): an idle time
			// worked out here would be short by however long the call
			// took to reach the server, and an entry delivered to the
			// other subscription meanwhile would look old enough.
			idle = "<" + strconv.FormatInt(s.started, 10)
		}
	}
	args := append([]any{s.group, s.o.Consumer, idle, k, s.o.MaxDeliveries, ownArg, from}, skip...)
	res, err := s.x.claim.Run(ctx, s.x.b.client, []string{k2.key, k2.dead, k2.trimmed, k2.live}, args...).Slice()
	if err != nil {
		return 0, "", s.x.b.fail(ctx, "stream claim", err)
	}
	if len(res) != 4 {
		return 0, "", fmt.Errorf("%w: coord/redis: stream claim returned %d values", coord.ErrInvalid, len(res))
	}
	entries, _ := res[2].([]any)
	got := 0
	for _, e := range entries {
		f, _ := e.([]any)
		if len(f) != 3 {
			continue
		}
		id, _ := f[0].(string)
		env, _ := f[1].(string)
		n, _ := f[2].(int64)
		s.start(entryOf(s.stream, id, env, int(n)))
		got++
	}
	next, _ := res[3].(string)
	if got < len(entries) {
		next = ""
	}
	return got, next, nil
}

// runningAs returns the IDs the other subscriptions of this process run
// under s's stream, group and consumer name (s must not take them as its
// own pending entries), and whether there is any such subscription.
func (x *Streams) runningAs(s *rstreamSub) (ids []any, siblings bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for o := range x.subs {
		if o == s || o.stream != s.stream || o.group != s.group || o.o.Consumer != s.o.Consumer {
			continue
		}
		siblings = true
		o.mu.Lock()
		for id := range o.inflight {
			ids = append(ids, id)
		}
		o.mu.Unlock()
	}
	return ids, siblings
}

// start runs the handler for e in a goroutine of its own; e holds a slot.
func (s *rstreamSub) start(e coord.StreamEntry) {
	s.mu.Lock()
	s.inflight[e.ID] = e.Deliveries
	s.mu.Unlock()
	s.handlers.Add(1)
	go s.run(e)
}

func (s *rstreamSub) run(e coord.StreamEntry) {
	defer s.handlers.Done()
	defer func() { <-s.slots }()
	err := s.call(e)
	if err == nil {
		b := s.x.b
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cmd := goredis.NewIntCmd(ctx, "XACK", s.k.key, s.group, e.ID)
		_ = b.fail(ctx, "stream ack", b.batch.process(ctx, cmd))
		cancel()
	}
	s.mu.Lock()
	delete(s.inflight, e.ID)
	s.mu.Unlock()
}

// call runs the handler; a panic is an error.
func (s *rstreamSub) call(e coord.StreamEntry) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("coord/redis: stream handler panicked: %v", r)
		}
	}()
	return s.fn(s.hctx, e)
}

// heartbeat keeps the running entries alive, and the group live, every
// ClaimAfter/3 until beatStop closes.
func (s *rstreamSub) heartbeat(bg *sync.WaitGroup, beatStop <-chan struct{}) {
	defer bg.Done()
	every := max(s.o.ClaimAfter/3, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-beatStop:
			return
		}
		s.mu.Lock()
		args := make([]any, 0, 2+len(s.inflight))
		args = append(args, s.group, s.o.Consumer)
		for id := range s.inflight {
			args = append(args, id)
		}
		s.mu.Unlock()
		// A slow round trip still counts while the entries are young.
		ctx, cancel := context.WithTimeout(context.Background(), max(2*every, time.Second))
		_ = s.x.b.fail(ctx, "stream heartbeat", s.x.b.batch.run(ctx, s.x.beat, []string{s.k.key, s.k.live}, args...).Err())
		cancel()
	}
}
