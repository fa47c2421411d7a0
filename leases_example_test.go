package coord_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
)

// Readers share a resource; a writer waits for them, and a reader that
// comes while the writer waits queues behind it.
func ExampleRWLocker() {
	ctx := context.Background()
	hub := memory.NewHub(nil)
	a := hub.New(&memory.Options{InstanceID: "node-a"})
	b := hub.New(&memory.Options{InstanceID: "node-b"})
	defer a.Close(ctx)
	defer b.Close(ctx)

	r1, _ := a.RWLocker().RLock(ctx, "config", coord.WithTTL(10*time.Second))
	r2, _ := b.RWLocker().RLock(ctx, "config", coord.WithTTL(10*time.Second))
	st, _ := a.RWLocker().State(ctx, "config")
	fmt.Printf("readers %d, writer %v\n", st.Readers, st.Writer)

	written := make(chan coord.Lock)
	go func() {
		w, err := b.RWLocker().Lock(ctx, "config", coord.WithWait(time.Second))
		if err != nil {
			fmt.Println(err)
		}
		written <- w
	}()
	for st.WritersWaiting == 0 {
		time.Sleep(time.Millisecond) // until the writer queues
		st, _ = a.RWLocker().State(ctx, "config")
	}
	_, err := a.RWLocker().RLock(ctx, "config", coord.WithRetry(0, 0))
	fmt.Println("a new reader while a writer waits:", errors.Is(err, coord.ErrNotAcquired))

	_ = r1.Release(ctx)
	_ = r2.Release(ctx) // the last reader hands the resource to the writer
	w := <-written
	fmt.Println("writer's fence above the readers':", w.Fence() > r2.Fence())
	_ = w.Release(ctx)
	// Output:
	// readers 2, writer false
	// a new reader while a writer waits: true
	// writer's fence above the readers': true
}

// At most two calls to a paid API at once, across every instance: each
// call runs under a permit, which frees itself at its TTL if its holder
// crashes.
func ExampleSemaphores() {
	ctx := context.Background()
	node := memory.NewHub(nil).New(nil)
	defer node.Close(ctx)

	sem := node.Semaphores()
	a, _ := sem.Acquire(ctx, "paid-api", 2, coord.WithTTL(10*time.Second))
	b, _ := sem.Acquire(ctx, "paid-api", 2, coord.WithTTL(10*time.Second))
	_, err := sem.Acquire(ctx, "paid-api", 2, coord.WithRetry(0, 0))
	fmt.Println("third permit:", errors.Is(err, coord.ErrNotAcquired))
	_ = a.Release(ctx)
	_ = b.Release(ctx)

	err = coord.WithPermit(ctx, sem, "paid-api", 2, func(ctx context.Context) error {
		n, _ := sem.Holders(ctx, "paid-api")
		fmt.Println("calling the API; permits held:", n)
		return nil
	}, coord.WithWait(time.Second))
	fmt.Println("error:", err)
	// Output:
	// third permit: true
	// calling the API; permits held: 1
	// error: <nil>
}

// One instance leads; every instance can read who. A resignation hands
// leadership to the next campaigner at once, with a higher term.
func ExampleElector() {
	ctx := context.Background()
	hub := memory.NewHub(nil)
	a := hub.New(&memory.Options{InstanceID: "node-a"})
	b := hub.New(&memory.Options{InstanceID: "node-b"})
	defer a.Close(ctx)
	defer b.Close(ctx)

	lead, _ := a.Elector().Campaign(ctx, "scheduler", "10.0.0.1:8080", coord.WithTTL(10*time.Second))
	info, _ := b.Elector().Leader(ctx, "scheduler")
	fmt.Printf("leader %s on %s, term %d\n", info.Identity, info.InstanceID, info.Term)

	next := make(chan coord.Leadership)
	go func() {
		l, err := b.Elector().Campaign(ctx, "scheduler", "10.0.0.2:8080", coord.WithWait(time.Second))
		if err != nil {
			fmt.Println(err)
		}
		next <- l
	}()
	time.Sleep(10 * time.Millisecond) // let b campaign
	_ = lead.Release(ctx)             // resign
	l := <-next
	fmt.Println("new leader:", l.Identity(), "term above the last:", l.Fence() > lead.Fence())
	_ = l.Release(ctx)
	// Output:
	// leader 10.0.0.1:8080 on node-a, term 1
	// new leader: 10.0.0.2:8080 term above the last: true
}

// RunElected runs the scheduler only on the leading instance: fn gets the
// leadership (its Fence is the term, to fence the leader's writes), and
// its ctx ends when leadership is lost or RunElected's ctx ends.
func ExampleRunElected() {
	ctx, cancel := context.WithCancel(context.Background())
	node := memory.NewHub(nil).New(&memory.Options{InstanceID: "node-a"})
	defer node.Close(context.Background())

	err := coord.RunElected(ctx, node.Elector(), "scheduler", "10.0.0.1:8080", func(ctx context.Context, l coord.Leadership) error {
		fmt.Println("leading with term", l.Fence())
		cancel() // stop taking part
		<-ctx.Done()
		return nil
	}, coord.WithTTL(10*time.Second))
	fmt.Println("RunElected:", err)
	_, err = node.Elector().Leader(context.Background(), "scheduler")
	fmt.Println("resigned:", errors.Is(err, coord.ErrNotFound))
	// Output:
	// leading with term 1
	// RunElected: context canceled
	// resigned: true
}
