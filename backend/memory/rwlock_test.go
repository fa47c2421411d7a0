package memory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// shapesLeft returns how many read-write resources, semaphores and
// elections the hub still keeps.
func shapesLeft(h *Hub) (rw, sems, elect int) {
	h.lmu.Lock()
	defer h.lmu.Unlock()
	return len(h.shapes.rw), len(h.shapes.sems), len(h.shapes.elect)
}

// TestShapesForgetIdleNames checks that the hub keeps no state for a
// name once its leases, waiters and observers are gone, whichever way
// they went: release, expiry, a cancelled wait, a closed node.
func TestShapesForgetIdleNames(t *testing.T) {
	h := NewHub(nil)
	a, b := h.New(nil), h.New(nil)
	defer a.Close(context.Background())
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 200 {
		name := fmt.Sprintf("n-%d", i)
		wg.Go(func() {
			w, err := a.RWLocker().Lock(ctx, name, coord.WithTTL(time.Minute))
			if err != nil {
				t.Error(err)
				return
			}
			got := make(chan error, 1)
			go func() {
				r, err := b.RWLocker().RLock(ctx, name, coord.WithWait(time.Second))
				if err == nil {
					err = r.Release(ctx)
				}
				got <- err
			}()
			p, err := b.Semaphores().Acquire(ctx, name, 1, coord.WithTTL(time.Millisecond))
			if err != nil {
				t.Error(err)
				return
			}
			_ = p
			l, err := a.Elector().Campaign(ctx, name, "id", coord.WithTTL(time.Minute))
			if err != nil {
				t.Error(err)
				return
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			_, _ = b.Elector().Campaign(cctx, name, "id2", coord.WithWait(time.Second))
			sub, err := b.Elector().Observe(ctx, name, func(coord.LeaderInfo) {})
			if err != nil {
				t.Error(err)
				return
			}
			sub.Unsubscribe()
			<-sub.Done()
			if err := l.Release(ctx); err != nil {
				t.Error(err)
			}
			if err := w.Release(ctx); err != nil {
				t.Error(err)
			}
			if err := <-got; err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// The permits expire on their own; closing b ends anything left.
	deadline := time.Now().Add(2 * time.Second)
	for {
		rw, sems, elect := shapesLeft(h)
		if rw == 0 && sems == 0 && elect == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hub still keeps %d read-write resources, %d semaphores, %d elections", rw, sems, elect)
		}
		time.Sleep(5 * time.Millisecond)
		_, _ = a.Semaphores().Holders(ctx, "n-0") // expiry is also noticed by a read
	}
	_ = b.Close(ctx)
}

// TestRestartEndsShapes checks that Hub.Restart ends read and write
// leases, permits and leaderships, as a restart without persistence
// loses them, and that fences still increase.
func TestRestartEndsShapes(t *testing.T) {
	h := NewHub(nil)
	a := h.New(nil)
	defer a.Close(context.Background())
	ctx := t.Context()
	r, err := a.RWLocker().RLock(ctx, "x", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Semaphores().Acquire(ctx, "x", 1, coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	l, err := a.Elector().Campaign(ctx, "x", "id", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	h.Restart()
	for name, lk := range map[string]coord.Lock{"read lease": r, "permit": p, "leadership": l} {
		select {
		case <-lk.Done():
		default:
			t.Errorf("the %s survived the restart", name)
		}
		if err := lk.Release(ctx); !errors.Is(err, coord.ErrExpired) {
			t.Errorf("Release of the %s after the restart: %v, want ErrExpired", name, err)
		}
	}
	w, err := a.RWLocker().Lock(ctx, "x", coord.WithRetry(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if w.Fence() <= l.Fence() {
		t.Errorf("fence %d after the restart is not above %d", w.Fence(), l.Fence())
	}
}

// TestShapeLeaseStringRedacts checks that a lease's String never shows
// its token.
func TestShapeLeaseStringRedacts(t *testing.T) {
	h := NewHub(nil)
	a := h.New(nil)
	defer a.Close(context.Background())
	ctx := t.Context()
	r, err := a.RWLocker().RLock(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	l, err := a.Elector().Campaign(ctx, "x", "10.0.0.1", coord.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for _, lk := range []coord.Lock{r, l} {
		s := fmt.Sprint(lk)
		if strings.Contains(s, lk.Token()) || !strings.Contains(s, `"x"`) {
			t.Errorf("String() = %s", s)
		}
	}
	if s := fmt.Sprint(l); !strings.Contains(s, "10.0.0.1") {
		t.Errorf("a leadership's String does not name its identity: %s", s)
	}
}

// TestObserverQueueBounded checks that an observer whose handler is stuck
// keeps at most its queue bound and, once it runs again, ends with the
// leader now.
func TestObserverQueueBounded(t *testing.T) {
	h := NewHub(nil)
	a := h.New(nil)
	defer a.Close(context.Background())
	ctx := t.Context()
	release := make(chan struct{})
	var mu sync.Mutex
	var seen []coord.LeaderInfo
	sub, err := a.Elector().Observe(ctx, "q", func(i coord.LeaderInfo) {
		<-release
		mu.Lock()
		seen = append(seen, i)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	var last coord.Leadership
	for i := range 3 * leaderObservationQueue {
		l, err := a.Elector().Campaign(ctx, "q", fmt.Sprint(i), coord.WithTTL(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if i < 3*leaderObservationQueue-1 {
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}
		last = l
	}
	h.lmu.Lock()
	o := h.shapes.elect["q"].observers[0]
	h.lmu.Unlock()
	o.mu.Lock()
	queued := len(o.pending)
	o.mu.Unlock()
	if queued > leaderObservationQueue {
		t.Errorf("%d observations queued, bound %d", queued, leaderObservationQueue)
	}
	close(release)
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		var end coord.LeaderInfo
		if n > 0 {
			end = seen[n-1]
		}
		mu.Unlock()
		if end.Term == last.Fence() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the observer ended with %+v, not the leader now (term %d)", end, last.Fence())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestObserverPanicRecovered checks that a panicking observer goes on
// receiving changes.
func TestObserverPanicRecovered(t *testing.T) {
	h := NewHub(nil)
	a := h.New(nil)
	defer a.Close(context.Background())
	ctx := t.Context()
	got := make(chan coord.LeaderInfo, 8)
	sub, err := a.Elector().Observe(ctx, "p", func(i coord.LeaderInfo) {
		got <- i
		if i.InstanceID == "" {
			panic("observer bug")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	<-got // none, and the panic
	l, err := a.Elector().Campaign(ctx, "p", "id")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case i := <-got:
		if i.Term != l.Fence() {
			t.Errorf("observed %+v, want term %d", i, l.Fence())
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a panicking observer stopped receiving")
	}
}

// TestLockerHeldListsOnlyLocks checks that Locker.Held lists the
// Locker's leases only, not the node's read-write leases, permits or
// leaderships of the same name.
func TestLockerHeldListsOnlyLocks(t *testing.T) {
	h := NewHub(nil)
	a := h.New(nil)
	defer a.Close(context.Background())
	ctx := t.Context()
	if _, err := a.RWLocker().RLock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Semaphores().Acquire(ctx, "x", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Elector().Campaign(ctx, "x", "id"); err != nil {
		t.Fatal(err)
	}
	l, err := a.Locker().Acquire(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	held := a.Locker().Held()
	if len(held) != 1 || held[0] != l {
		t.Errorf("Held = %v, want only the Locker's lease", held)
	}
}
