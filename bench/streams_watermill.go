package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"
)

// watermillSubscriber subscribes to key as consumer c of group g on a
// client of its own (watermill closes its client).
func (sb *streamBench) watermillSubscriber(ctx context.Context, key string) (*redisstream.Subscriber, <-chan *message.Message, error) {
	s, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client:        goredis.NewClient(sb.raw.Options()),
		ConsumerGroup: "g",
		Consumer:      "c",
		// Without it the first read blocks until an entry comes, whatever
		// ctx does (go-redis#2556).
		DisableIndefiniteInitialBlock: true,
	}, watermill.NopLogger{})
	if err != nil {
		return nil, nil, err
	}
	ch, err := s.Subscribe(ctx, key)
	if err != nil {
		_ = s.Close()
		return nil, nil, err
	}
	return s, ch, nil
}

// runWatermillDrain measures watermill's subscriber acking a backlog.
func (sb *streamBench) runWatermillDrain(ctx context.Context, d time.Duration) (metrics, error) {
	_, key := sb.fresh("wm-drain")
	n := int(200000 * d.Seconds())
	for done := 0; done < n; {
		k := min(1000, n-done)
		_, err := sb.raw.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i := range k {
				p.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []string{redisstream.UUIDHeaderKey, watermill.NewShortUUID(), "payload", strconv.Itoa(done + i)}})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		done += k
	}
	defer sb.raw.Del(context.Background(), key)
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	s, ch, err := sb.watermillSubscriber(rctx, key)
	if err != nil {
		return nil, err
	}
	got := 0
loop:
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				break loop
			}
			got++
			m.Ack()
		case <-rctx.Done():
			break loop
		}
	}
	elapsed := time.Since(start)
	_ = s.Close()
	return metrics{"entries/s": float64(got) / elapsed.Seconds()}, nil
}

// runWatermillLatency publishes with watermill's publisher at rate and
// times publish-to-handler through its subscriber.
func (sb *streamBench) runWatermillLatency(ctx context.Context, rate int, d time.Duration) (metrics, error) {
	_, key := sb.fresh("wm-latency")
	defer sb.raw.Del(context.Background(), key)
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: goredis.NewClient(sb.raw.Options())}, watermill.NopLogger{})
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, ch, err := sb.watermillSubscriber(rctx, key)
	if err != nil {
		return nil, err
	}
	n := int(float64(rate) * d.Seconds())
	sent := make([]atomic.Int64, n)
	base := time.Now()
	var mu sync.Mutex
	lat := make(samples, 0, n)
	var wg sync.WaitGroup
	wg.Go(func() {
		for m := range ch {
			now := time.Since(base)
			if seq, err := strconv.Atoi(string(m.Payload)); err == nil && seq >= 0 && seq < n {
				if at := sent[seq].Load(); at > 0 {
					mu.Lock()
					lat = append(lat, now-time.Duration(at))
					mu.Unlock()
				}
			}
			m.Ack()
		}
	})
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		sent[i].Store(int64(max(time.Since(base), 1)))
		if err := pub.Publish(key, message.NewMessage(watermill.NewShortUUID(), []byte(strconv.Itoa(i)))); err != nil {
			cancel()
			_ = s.Close()
			wg.Wait()
			return nil, fmt.Errorf("watermill publish: %w", err)
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
	_ = s.Close()
	wg.Wait()
	mu.Lock()
	all := slices.Clone(lat)
	mu.Unlock()
	slices.Sort(all)
	return metrics{"p50": percentile(all, 0.5), "p99": percentile(all, 0.99), "lost %": 100 * float64(n-len(all)) / float64(max(n, 1))}, nil
}
