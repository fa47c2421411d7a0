package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// sink receives the sequence numbers of one round's messages.
type sink struct {
	base   time.Time
	sendAt []atomic.Int64 // ns since base at which message i was sent
	count  atomic.Int64   // messages received
	purges atomic.Int64   // invalidation purges received (overflow)

	mu  sync.Mutex
	lat samples
}

func newSink(n int) *sink {
	return &sink{base: time.Now(), sendAt: make([]atomic.Int64, n), lat: make(samples, 0, n)}
}

// got records message seq as received now.
func (s *sink) got(seq int) {
	now := time.Since(s.base)
	if seq >= 0 && seq < len(s.sendAt) {
		if at := s.sendAt[seq].Load(); at > 0 {
			s.mu.Lock()
			s.lat = append(s.lat, now-time.Duration(at))
			s.mu.Unlock()
		}
	}
	s.count.Add(1)
}

// channel is one way of sending messages to one subscriber: raw go-redis
// PUBLISH/SUBSCRIBE, or coord's invalidation or event bus between two
// Backends (two instances). The subscription lives for the whole run; each
// round points it at a fresh sink.
type channel struct {
	cur atomic.Pointer[sink]
	// publish sends message seq the contender's way.
	publish func(ctx context.Context, seq int) error
	// wire appends message seq, sent at ts (Unix ms), as it travels in
	// Redis and returns its channel, for the flood publisher of the
	// maximum-rate test.
	wire func(dst []byte, seq int, ts int64) (string, []byte)
	// dropped counts messages the subscriber dropped (coord's queue).
	dropped func() uint64
	close   func()
}

func (c *channel) deliver(seq int) {
	if s := c.cur.Load(); s != nil {
		s.got(seq)
	}
}

func (c *channel) purge() {
	if s := c.cur.Load(); s != nil {
		s.purges.Add(1)
	}
}

// appendWire appends a message in the Node design's invalidation format
// (field is "cacheKey", value "k:<seq>") or event format (field "event",
// value "bench", payload seq).
func appendWire(dst []byte, instance string, event bool, seq int, ts int64) []byte {
	dst = append(dst, `{"instanceId":"`...)
	dst = append(dst, instance...)
	if event {
		dst = append(dst, `","event":"bench","payload":`...)
		dst = strconv.AppendInt(dst, int64(seq), 10)
	} else {
		dst = append(dst, `","cacheKey":"k:`...)
		dst = strconv.AppendInt(dst, int64(seq), 10)
		dst = append(dst, `","metadata":null`...)
	}
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '}')
}

const keyField = `"cacheKey":"k:`

// rawSeq finds the sequence number in a raw invalidation message, the
// least a raw subscriber must do to know which key changed.
func rawSeq(msg string) int {
	i := strings.Index(msg, keyField)
	if i < 0 {
		return -1
	}
	j := i + len(keyField)
	k := j
	for k < len(msg) && msg[k] >= '0' && msg[k] <= '9' {
		k++
	}
	n, err := strconv.Atoi(msg[j:k])
	if err != nil {
		return -1
	}
	return n
}

// newRawChannel is the baseline: a go-redis client PUBLISHes the Node
// design's invalidation JSON, another reads it with a PubSub. With hop,
// the reading goroutine hands each message over a buffered Go channel to
// a handler goroutine, as any subscriber with a goroutine of its own must:
// it shows what that one hop costs.
//
// With timeout > 0 the reader calls ReceiveTimeout(ctx, timeout), as
// backend/redis does with its health interval, instead of ReceiveMessage.
func newRawChannel(ctx context.Context, srv *server, hop bool, timeout time.Duration) (*channel, error) {
	pub, subC := srv.newClient(), srv.newClient()
	name := "rawbench:cache:invalidate"
	if hop {
		name = "rawbench:hop:cache:invalidate"
	}
	if timeout > 0 {
		name = "rawbench:timeout:cache:invalidate"
	}
	ps := subC.Subscribe(ctx, name)
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		pub.Close()
		subC.Close()
		return nil, fmt.Errorf("raw subscribe: %w", err)
	}
	c := &channel{dropped: func() uint64 { return 0 }}
	done := make(chan struct{})
	var hopped chan int
	hopDone := make(chan struct{})
	if hop {
		hopped = make(chan int, 1024)
		go func() {
			defer close(hopDone)
			for seq := range hopped {
				c.deliver(seq)
			}
		}()
	} else {
		close(hopDone)
	}
	go func() {
		defer close(done)
		if hopped != nil {
			defer close(hopped)
		}
		for {
			var m *goredis.Message
			var err error
			if timeout > 0 {
				var v any
				v, err = ps.ReceiveTimeout(context.Background(), timeout)
				if err == nil {
					var ok bool
					if m, ok = v.(*goredis.Message); !ok {
						continue
					}
				}
			} else {
				m, err = ps.ReceiveMessage(context.Background())
			}
			if err != nil {
				if errors.Is(err, goredis.ErrClosed) {
					return
				}
				continue
			}
			if hopped != nil {
				hopped <- rawSeq(m.Payload)
				continue
			}
			c.deliver(rawSeq(m.Payload))
		}
	}()
	c.publish = func(ctx context.Context, seq int) error {
		var buf [160]byte
		return pub.Publish(ctx, name, appendWire(buf[:0], "bench-raw", false, seq, time.Now().UnixMilli())).Err()
	}
	c.wire = func(dst []byte, seq int, ts int64) (string, []byte) {
		return name, appendWire(dst, "bench-flood", false, seq, ts)
	}
	c.close = func() {
		_ = ps.Close()
		<-done
		<-hopDone
		pub.Close()
		subC.Close()
	}
	return c, nil
}

// newCoordChannel sends through coord between two Backends on their own
// clients: invalidations (Invalidate, key "k:<seq>") or events (Publish
// on topic "bench" with payload seq).
func newCoordChannel(ctx context.Context, srv *server, events bool) (*channel, error) {
	pubC, subC := srv.newClient(), srv.newClient()
	prefix := "bench:"
	pub, err := coordredis.New(pubC, &coordredis.Options{Prefix: prefix, InstanceID: "bench-pub"})
	if err != nil {
		return nil, err
	}
	sub, err := coordredis.New(subC, &coordredis.Options{Prefix: prefix, InstanceID: "bench-sub"})
	if err != nil {
		return nil, err
	}
	c := &channel{}
	var s coord.Subscription
	if events {
		s, err = sub.Events().Subscribe(ctx, "bench", func(ev coord.Event) {
			n, err := strconv.Atoi(string(ev.Payload))
			if err != nil {
				n = -1
			}
			c.deliver(n)
		})
		c.publish = func(ctx context.Context, seq int) error { return pub.Events().Publish(ctx, "bench", seq) }
		c.wire = func(dst []byte, seq int, ts int64) (string, []byte) {
			return prefix + "shard:event", appendWire(dst, "bench-flood", true, seq, ts)
		}
		c.dropped = func() uint64 { return sub.Events().Stats().Dropped }
	} else {
		s, err = sub.Invalidator().Subscribe(ctx, func(inv coord.Invalidation) {
			if inv.Kind == coord.PurgeAll {
				c.purge()
				return
			}
			n, err := strconv.Atoi(inv.Key[2:])
			if err != nil {
				n = -1
			}
			c.deliver(n)
		})
		keys := make([]string, 0, 1<<16)
		for i := range cap(keys) {
			keys = append(keys, "k:"+strconv.Itoa(i))
		}
		c.publish = func(ctx context.Context, seq int) error {
			k := ""
			if seq < len(keys) {
				k = keys[seq]
			} else {
				k = "k:" + strconv.Itoa(seq)
			}
			return pub.Invalidator().Invalidate(ctx, k, nil)
		}
		c.wire = func(dst []byte, seq int, ts int64) (string, []byte) {
			return prefix + "cache:invalidate", appendWire(dst, "bench-flood", false, seq, ts)
		}
		c.dropped = func() uint64 { return sub.Invalidator().Stats().Dropped }
	}
	if err != nil {
		return nil, err
	}
	c.close = func() {
		s.Unsubscribe()
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sub.Close(cctx)
		_ = pub.Close(cctx)
		pubC.Close()
		subC.Close()
	}
	return c, nil
}

// latencyCell returns how long a measured cell of the latency test lasts:
// long enough for cfg.latencyN messages at cfg.rate, and at least d (the
// -duration of every cell). At 1000 msgs/s an 800 ms cell puts 8 messages
// above its p99, so that p99 moves with the machine more than with the
// code. The warm-up cell (round < 0) keeps d.
func latencyCell(cfg config, round int, d time.Duration) time.Duration {
	if round < 0 || cfg.rate < 1 {
		return d
	}
	return max(d, time.Duration(cfg.latencyN)*time.Second/time.Duration(cfg.rate))
}

// runLatency publishes at rate messages/s for d, paced from the start
// (a late send goes at once, it does not shift the schedule), and reports
// publish-to-receive p50 and p99 (from before the publish call to the
// subscriber's handler) and the share lost.
func runLatency(ctx context.Context, c *channel, rate int, d time.Duration) (metrics, error) {
	n := int(float64(rate) * d.Seconds())
	s := newSink(n)
	c.cur.Store(s)
	defer c.cur.Store(nil)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		s.sendAt[i].Store(int64(max(time.Since(s.base), 1)))
		if err := c.publish(ctx, i); err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	sendRate := float64(n) / time.Since(start).Seconds()
	deadline := time.Now().Add(2 * time.Second)
	for s.count.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	c.cur.Store(nil)
	s.mu.Lock()
	lat := slices.Clone(s.lat)
	s.mu.Unlock()
	slices.Sort(lat)
	return metrics{
		"p50":     percentile(lat, 0.50),
		"p99":     percentile(lat, 0.99),
		"max":     percentile(lat, 1),
		"sent/s":  sendRate,
		"lost %":  100 * float64(n-len(lat)) / float64(n),
		"samples": float64(len(lat)),
	}, nil
}

// runFlood measures one subscriber's maximum rate: a raw go-redis client
// publishes the contender's wire messages in pipelines of batch, keeping
// at most window messages in flight (sent but neither received nor
// dropped), for d. It reports messages received per second.
func runFlood(ctx context.Context, pubC *goredis.Client, c *channel, d time.Duration) (metrics, error) {
	const batch, window = 256, 16384
	s := newSink(0)
	c.cur.Store(s)
	defer c.cur.Store(nil)
	dropped0 := c.dropped()
	var buf []byte
	sent := int64(0)
	start := time.Now()
	end := start.Add(d)
	for time.Now().Before(end) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		done := s.count.Load() + int64(c.dropped()-dropped0)
		if sent-done > window-batch {
			time.Sleep(50 * time.Microsecond)
			continue
		}
		p := pubC.Pipeline()
		ts := time.Now().UnixMilli()
		for range batch {
			buf = buf[:0]
			ch, msg := c.wire(buf, int(sent), ts)
			p.Publish(ctx, ch, string(msg))
			sent++
		}
		if _, err := p.Exec(ctx); err != nil {
			return nil, err
		}
	}
	got := s.count.Load()
	elapsed := time.Since(start)
	// Let the backlog drain before the next test.
	deadline := time.Now().Add(5 * time.Second)
	for s.count.Load()+int64(c.dropped()-dropped0) < sent && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return metrics{
		"msgs/s":  float64(got) / elapsed.Seconds(),
		"dropped": float64(c.dropped() - dropped0),
		"purges":  float64(s.purges.Load()),
	}, nil
}
