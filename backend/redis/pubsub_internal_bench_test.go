package redis

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/subq"
)

// BenchmarkDecodeInvalidation: the subscriber's decode of one message in
// the Node design's format.
func BenchmarkDecodeInvalidation(b *testing.B) {
	msg := string(encodeInvalidation("bench-pub", "user:42:profile", nullPayload, time.UnixMilli(1700000000123)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeInvalidation(msg, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeInvalidation: the publisher's encoding of one message,
// with nil metadata and with a small map.
func BenchmarkEncodeInvalidation(b *testing.B) {
	for _, c := range []struct {
		name string
		meta any
	}{{"nil", nil}, {"map", map[string]any{"reason": "update"}}, {"raw", json.RawMessage(`{"reason":"update"}`)}} {
		b.Run(c.name, func(b *testing.B) {
			head := envelopeHead("bench-pub")
			b.ReportAllocs()
			for b.Loop() {
				raw, err := encodePayload(c.meta, coord.DefaultMaxPayload)
				if err != nil {
					b.Fatal(err)
				}
				_ = encodeMessage(head, fieldCacheKey, "user:42:profile", fieldMetadata, raw, time.Now())
			}
		})
	}
}

// BenchmarkSubscriptionQueue: one goroutine pushes as fast as it can, the
// subscription's goroutine drains; it reports the share of pushes
// dropped.
func BenchmarkSubscriptionQueue(b *testing.B) {
	var dropped, purges, panics atomic.Uint64
	var got atomic.Int64
	s := subq.New(subq.Config[coord.Invalidation]{Limit: coord.DefaultQueueSize, Handler: func(coord.Invalidation) { got.Add(1) },
		Size: invSize, Control: invControl, Budget: subq.NewBudget(coord.DefaultQueueBytes), Dropped: &dropped, Purges: &purges, Panics: &panics})
	var wg sync.WaitGroup
	s.Start(context.Background(), &wg)
	inv := coord.Invalidation{Kind: coord.KeyInvalidation, Key: "k:" + strconv.Itoa(1), InstanceID: "x"}
	b.ReportAllocs()
	for b.Loop() {
		s.Push(inv)
	}
	b.StopTimer()
	s.Unsubscribe()
	<-s.Done()
	b.ReportMetric(float64(dropped.Load())/float64(b.N), "dropped/op")
}
