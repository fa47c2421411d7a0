package redis

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/cgn-bot/coord/internal/redistest"
)

// entries returns how many entries the subscriber's per-channel
// maps hold.
func (s *subscriber) entries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.chans) + len(s.counts) + len(s.awaiting) + len(s.leaving)
}

func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestSubscriberForgetsReleasedChannels: channels subscribed and released
// through the subscriber (as lock waiters do, one channel per resource
// name) leave nothing behind: the per-channel maps are empty once every
// confirmation arrived, and the heap returns to its baseline (a bound
// that catches ~20 B per name; the leak was ~100 B).
func TestSubscriberForgetsReleasedChannels(t *testing.T) {
	const (
		batch   = 1000
		batches = 100
		perName = 20 // bytes per name the bound allows
	)
	srv := redistest.Start(t)
	b, _ := newTestBackend(t, srv.Options, nil)
	ctx := t.Context()
	s := b.sub
	round := func(r int) {
		readies := make([]<-chan struct{}, batch)
		names := make([]string, batch)
		for i := range batch {
			names[i] = b.keys.prefix + "wake-test:" + strconv.Itoa(r) + ":" + strconv.Itoa(i)
			ready, err := s.acquire(ctx, names[i], kindWake)
			if err != nil {
				t.Fatal(err)
			}
			readies[i] = ready
		}
		for _, ready := range readies {
			select {
			case <-ready:
			case <-time.After(5 * time.Second):
				t.Fatal("subscription not confirmed within 5s")
			}
		}
		for _, n := range names {
			s.release(n)
		}
		waitFor(t, 5*time.Second, func() bool { return s.entries() == 0 }, "every UNSUBSCRIBE confirmed and the channels forgotten")
	}
	round(-1) // the maps reach their working size
	base := liveHeap()
	for r := range batches {
		round(r)
	}
	grown := liveHeap() - base
	t.Logf("heap grew by %d B after %d distinct channels (%.1f B each)", grown, batch*batches, float64(grown)/(batch*batches))
	if grown > perName*batch*batches {
		t.Errorf("heap grew by %d B after %d distinct channels were released, want at most %d B", grown, batch*batches, perName*batch*batches)
	}
}
