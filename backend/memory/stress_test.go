package memory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// Many goroutines on three nodes take turns on a few resources, some with
// a ctx that ends mid-wait: holders never overlap and fences only rise.
func TestStressLeases(t *testing.T) {
	ns := nodes(t, 3)
	ctx := t.Context()
	const resources = 3
	var inside [resources]atomic.Int32
	var lastFence [resources]atomic.Int64
	var acquired atomic.Int64
	var wg sync.WaitGroup
	for g := range 12 {
		wg.Go(func() {
			lk := ns[g%3].Locker()
			for i := range 40 {
				ri := rand.IntN(resources)
				wctx, cancel := context.WithTimeout(ctx, time.Duration(rand.IntN(3000))*time.Microsecond)
				l, err := lk.Acquire(wctx, fmt.Sprint("stress-", ri), coord.WithWait(time.Second), coord.WithTTL(5*time.Second))
				cancel()
				if err != nil {
					continue
				}
				acquired.Add(1)
				if n := inside[ri].Add(1); n != 1 {
					t.Errorf("%d holders of resource %d at once", n, ri)
				}
				for {
					last := lastFence[ri].Load()
					if l.Fence() <= last {
						t.Errorf("fence %d after %d on resource %d", l.Fence(), last, ri)
						break
					}
					if lastFence[ri].CompareAndSwap(last, l.Fence()) {
						break
					}
				}
				if i%7 == 0 {
					time.Sleep(100 * time.Microsecond) // hold a little
				}
				inside[ri].Add(-1)
				if err := l.Release(context.Background()); err != nil {
					t.Errorf("Release: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if acquired.Load() == 0 {
		t.Fatal("no Acquire succeeded")
	}
	for ri := range resources {
		if locked, _ := ns[0].Locker().Locked(ctx, fmt.Sprint("stress-", ri)); locked {
			t.Errorf("resource %d held after every holder released: a lease leaked", ri)
		}
		if q := queued(ns[0].hub, fmt.Sprint("stress-", ri)); q != 0 {
			t.Errorf("resource %d has %d waiters left", ri, q)
		}
	}
}

// Publishing, subscribing, unsubscribing and closing all at once is safe
// and Close still waits for everything.
func TestStressPubSubAndClose(t *testing.T) {
	hub := NewHub(nil)
	pubs := []*Backend{hub.New(nil), hub.New(nil)}
	t.Cleanup(func() {
		for _, p := range pubs {
			_ = p.Close(context.Background())
		}
	})
	for range 5 {
		victim := hub.New(&Options{QueueSize: 4})
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for _, p := range pubs {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					_ = p.Invalidator().Invalidate(context.Background(), fmt.Sprint("k", i%10), nil)
					_ = p.Events().Publish(context.Background(), "t", i)
				}
			})
		}
		for range 3 {
			wg.Go(func() {
				for range 20 {
					s1, err1 := victim.Invalidator().Subscribe(context.Background(), func(coord.Invalidation) {}, coord.OnlyKey("k1"))
					s2, err2 := victim.Events().Subscribe(context.Background(), "t", func(coord.Event) { time.Sleep(10 * time.Microsecond) })
					if err1 == nil {
						s1.Unsubscribe()
					}
					if err2 == nil && rand.IntN(2) == 0 {
						s2.Unsubscribe()
					}
				}
			})
		}
		victim.CutSubscription()
		time.Sleep(2 * time.Millisecond) // let the traffic run a little
		if err := victim.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
	}
}
