package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/wire"
)

// streamBench holds the clients and Backends of the stream tests.
type streamBench struct {
	raw     *goredis.Client
	backs   []*coordredis.Backend
	clients []*goredis.Client
	prefix  string
	seq     atomic.Int64
}

func newStreamBench(srv *server) (*streamBench, error) {
	sb := &streamBench{raw: srv.newClient(), prefix: "sbench:"}
	for i := range 5 {
		c := srv.newClient()
		b, err := coordredis.New(c, &coordredis.Options{Prefix: sb.prefix, InstanceID: fmt.Sprintf("bench-st-%d", i)})
		if err != nil {
			sb.close()
			return nil, err
		}
		sb.backs = append(sb.backs, b)
		sb.clients = append(sb.clients, c)
	}
	return sb, nil
}

func (sb *streamBench) close() {
	for _, b := range sb.backs {
		_ = b.Close(context.Background())
	}
	for _, c := range sb.clients {
		_ = c.Close()
	}
	_ = sb.raw.Close()
}

// fresh returns a stream name used by no other cell, and its raw key.
func (sb *streamBench) fresh(what string) (string, string) {
	name := fmt.Sprintf("%s-%d", what, sb.seq.Add(1))
	return name, sb.prefix + "st:{" + name + "}"
}

// rawEntry is the entry raw go-redis appends: the same envelope coord
// stores.
func rawEntry(seq int) string {
	return string(wire.EncodeEvent("bench-raw", "s", []byte(strconv.Itoa(seq)), time.Now()))
}

// rawConsume reads key as group with XREADGROUP COUNT batch BLOCK 100ms
// and acks each entry with XACK after calling handle, until ctx ends: the
// straightforward go-redis loop.
func (sb *streamBench) rawConsume(ctx context.Context, c *goredis.Client, key, group, consumer string, batch int64, handle func(goredis.XMessage)) error {
	for ctx.Err() == nil {
		res, err := c.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: group, Consumer: consumer, Streams: []string{key, ">"}, Count: batch, Block: 100 * time.Millisecond}).Result()
		if errors.Is(err, goredis.Nil) || ctx.Err() != nil {
			continue
		}
		if err != nil {
			return err
		}
		ids := make([]string, 0, batch)
		for _, s := range res {
			for _, m := range s.Messages {
				handle(m)
				ids = append(ids, m.ID)
			}
		}
		if len(ids) > 0 {
			if err := c.XAck(ctx, key, group, ids...).Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// fill appends n entries to key with pipelined XADDs.
func (sb *streamBench) fill(ctx context.Context, key string, n int) error {
	for done := 0; done < n; {
		k := min(1000, n-done)
		_, err := sb.raw.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i := range k {
				p.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []string{"e", rawEntry(done + i)}})
			}
			return nil
		})
		if err != nil {
			return err
		}
		done += k
	}
	return nil
}

// runStreamAppend appends from g goroutines for d.
func (sb *streamBench) runStreamAppend(ctx context.Context, c string, g int, d time.Duration) (metrics, error) {
	name, key := sb.fresh("append")
	var fn op
	switch c {
	case "raw":
		fn = func(ctx context.Context, _, i int) error {
			return sb.raw.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []string{"e", rawEntry(i)}}).Err()
		}
	default:
		s := sb.backs[0].Streams()
		fn = func(ctx context.Context, _, i int) error {
			_, err := s.Append(ctx, name, i)
			return err
		}
	}
	m, err := runOps(ctx, fn, g, d)
	_ = sb.raw.Del(context.Background(), key).Err()
	return m, err
}

// runStreamDrain measures one consumer acking a backlog as fast as it can.
func (sb *streamBench) runStreamDrain(ctx context.Context, c string, d time.Duration) (metrics, error) {
	name, key := sb.fresh("drain")
	n := int(200000 * d.Seconds())
	if err := sb.fill(ctx, key, n); err != nil {
		return nil, err
	}
	defer sb.raw.Del(context.Background(), key)
	var got atomic.Int64
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	switch c {
	case "raw":
		if err := sb.raw.XGroupCreate(ctx, key, "g", "0").Err(); err != nil {
			return nil, err
		}
		if err := sb.rawConsume(rctx, sb.raw, key, "g", "c", 256, func(goredis.XMessage) { got.Add(1) }); err != nil {
			return nil, err
		}
	default:
		sub, err := sb.backs[1].Streams().Consume(ctx, name, "g", func(context.Context, coord.StreamEntry) error {
			got.Add(1)
			return nil
		}, coord.ConsumeConcurrency(256), coord.ConsumerName("c"))
		if err != nil {
			return nil, err
		}
		<-rctx.Done()
		sub.Unsubscribe()
		<-sub.Done()
	}
	return metrics{"entries/s": float64(got.Load()) / time.Since(start).Seconds()}, nil
}

// runStreamLatency appends at rate entries/s and times append-to-handler.
func (sb *streamBench) runStreamLatency(ctx context.Context, c string, rate int, d time.Duration) (metrics, error) {
	name, key := sb.fresh("latency")
	defer sb.raw.Del(context.Background(), key)
	n := int(float64(rate) * d.Seconds())
	sent := make([]atomic.Int64, n)
	base := time.Now()
	var mu sync.Mutex
	lat := make(samples, 0, n)
	got := func(seq int) {
		now := time.Since(base)
		if seq >= 0 && seq < n {
			if at := sent[seq].Load(); at > 0 {
				mu.Lock()
				lat = append(lat, now-time.Duration(at))
				mu.Unlock()
			}
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var rerr error
	var appendOne func(i int) error
	switch c {
	case "raw":
		if err := sb.raw.XGroupCreateMkStream(ctx, key, "g", "$").Err(); err != nil {
			return nil, err
		}
		rc := sb.clients[4]
		wg.Go(func() {
			rerr = sb.rawConsume(rctx, rc, key, "g", "c", 16, func(m goredis.XMessage) {
				if ev, err := wire.DecodeEvent(m.Values["e"].(string)); err == nil {
					seq, _ := strconv.Atoi(string(ev.Payload))
					got(seq)
				}
			})
		})
		appendOne = func(i int) error {
			return sb.raw.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []string{"e", string(wire.EncodeEvent("bench-raw", name, []byte(strconv.Itoa(i)), time.Now()))}}).Err()
		}
	default:
		sub, err := sb.backs[1].Streams().Consume(rctx, name, "g", func(_ context.Context, e coord.StreamEntry) error {
			seq, _ := strconv.Atoi(string(e.Payload))
			got(seq)
			return nil
		}, coord.StartAt(coord.FromLatest), coord.ConsumerName("c"))
		if err != nil {
			return nil, err
		}
		defer func() { sub.Unsubscribe(); <-sub.Done() }()
		s := sb.backs[0].Streams()
		appendOne = func(i int) error {
			_, err := s.Append(ctx, name, i)
			return err
		}
	}
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		sent[i].Store(int64(max(time.Since(base), 1)))
		if err := appendOne(i); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		k := len(lat)
		mu.Unlock()
		if k >= n {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if rerr != nil {
		return nil, rerr
	}
	mu.Lock()
	all := slices.Clone(lat)
	mu.Unlock()
	slices.Sort(all)
	return metrics{"p50": percentile(all, 0.5), "p99": percentile(all, 0.99), "lost %": 100 * float64(n-len(all)) / float64(max(n, 1))}, nil
}

// runStreamScale measures a group of k consumers (each on a Backend of
// its own, concurrency 1) whose handler takes 1ms.
func (sb *streamBench) runStreamScale(ctx context.Context, k int, d time.Duration) (metrics, error) {
	name, key := sb.fresh("scale")
	if err := sb.fill(ctx, key, int(1500*float64(k)*d.Seconds())+1000); err != nil {
		return nil, err
	}
	defer sb.raw.Del(context.Background(), key)
	var got atomic.Int64
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	subs := make([]coord.Subscription, 0, k)
	for i := range k {
		sub, err := sb.backs[1+i].Streams().Consume(ctx, name, "g", func(context.Context, coord.StreamEntry) error {
			time.Sleep(time.Millisecond)
			got.Add(1)
			return nil
		}, coord.ConsumerName(fmt.Sprintf("c%d", i)))
		if err != nil {
			return nil, err
		}
		subs = append(subs, sub)
	}
	<-rctx.Done()
	for _, s := range subs {
		s.Unsubscribe()
	}
	for _, s := range subs {
		<-s.Done()
	}
	return metrics{"entries/s": float64(got.Load()) / time.Since(start).Seconds()}, nil
}

// streamTests are the tests of the streams (issue 14).
func streamTests(srv *server, cfg config) ([]*test, func(), error) {
	sb, err := newStreamBench(srv)
	if err != nil {
		return nil, nil, err
	}
	g := cfg.goroutines
	tests := []*test{
		{
			id: fmt.Sprintf("stream-append-%d", g), title: fmt.Sprintf("Stream append, %d goroutines", g),
			note:       "raw = go-redis XADD of the same envelope coord stores; coord = Streams.Append (XADD through the batcher).",
			contenders: []string{"raw", "coord"}, ops: rate("ops/s"),
			metrics: []metricDef{
				{key: "ops/s", label: "appends/s", ratio: true},
				{key: "p50", label: "p50 ms", ratio: true},
				{key: "p99", label: "p99 ms", ratio: true},
			},
			run: func(ctx context.Context, c string, _ int, d time.Duration) (metrics, error) {
				return sb.runStreamAppend(ctx, c, g, d)
			},
		},
		{
			id: "stream-drain", title: "One consumer acking a backlog",
			note: "raw = a go-redis loop of XREADGROUP COUNT 256 BLOCK 100ms and one XACK per batch; coord = Streams.Consume with " +
				"ConsumeConcurrency(256) (reads take as many entries as there are free handler slots; acks go through the batcher); " +
				"watermill = watermill-redisstream v1.4.5's subscriber (one message in flight, XACK per message). The handler only counts.",
			contenders: []string{"raw", "coord", "watermill"}, ops: rate("entries/s"),
			metrics: []metricDef{{key: "entries/s", label: "entries/s", ratio: true, worst: true, low: true}},
			run: func(ctx context.Context, c string, _ int, d time.Duration) (metrics, error) {
				if c == "watermill" {
					return sb.runWatermillDrain(ctx, d)
				}
				return sb.runStreamDrain(ctx, c, d)
			},
		},
		{
			id: "stream-latency", title: fmt.Sprintf("Stream append to handler at %d entries/s", cfg.rate),
			note: "From before the append call to the handler, on another Backend (raw: another client, XREADGROUP COUNT 16 BLOCK 100ms; " +
				"watermill: watermill-redisstream v1.4.5's publisher and subscriber, its defaults).",
			contenders: []string{"raw", "coord", "watermill"},
			ops:        func(m metrics, d time.Duration) float64 { return float64(cfg.rate) * d.Seconds() },
			metrics: []metricDef{
				{key: "p50", label: "p50 ms", ratio: true},
				{key: "p99", label: "p99 ms", ratio: true, worst: true},
				{key: "lost %", label: "lost %", worst: true},
			},
			run: func(ctx context.Context, c string, _ int, d time.Duration) (metrics, error) {
				if c == "watermill" {
					return sb.runWatermillLatency(ctx, cfg.rate, d)
				}
				return sb.runStreamLatency(ctx, c, cfg.rate, d)
			},
		},
		{
			id: "stream-scale", title: "A group of 1 or 4 consumers, handler of 1ms",
			note:       "Each consumer on a Backend of its own, concurrency 1, the handler sleeping 1ms; the ratio is 4 consumers over 1.",
			contenders: []string{"1", "4"}, ops: rate("entries/s"),
			metrics: []metricDef{{key: "entries/s", label: "entries/s", ratio: true}},
			run: func(ctx context.Context, c string, _ int, d time.Duration) (metrics, error) {
				k, _ := strconv.Atoi(c)
				return sb.runStreamScale(ctx, k, d)
			},
		},
	}
	return tests, sb.close, nil
}
