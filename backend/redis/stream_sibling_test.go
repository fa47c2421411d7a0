package redis_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// siblingClaimHook holds back the claim script of a subscription that
// shares its consumer name with another one (its own-entries pass, with
// a minimum idle time that is not zero) until release is closed, and
// records what that script returned.
type siblingClaimHook struct {
	group, consumer string
	held            chan struct{} // closed when such a claim is held
	release         chan struct{}
	once            sync.Once
	mu              sync.Mutex
	reply           []any
	replied         chan struct{} // closed when the held claim returned
	claims          atomic.Int32  // claims of group and consumer that returned
}

func (h *siblingClaimHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *siblingClaimHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

func (h *siblingClaimHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		a := cmd.Args()
		// evalsha|eval, script, 4, the four keys, group, consumer, min
		// idle, count, max deliveries, own, from, skipped IDs...
		if n := cmd.Name(); (n != "evalsha" && n != "eval") || len(a) < 14 || a[2] != 4 ||
			a[7] != h.group || a[8] != h.consumer {
			return next(ctx, cmd)
		}
		if a[12] != "1" || a[9] == int64(0) {
			defer h.claims.Add(1)
			return next(ctx, cmd)
		}
		first := false
		h.once.Do(func() { first = true })
		if !first {
			return next(ctx, cmd)
		}
		close(h.held)
		<-h.release
		err := next(ctx, cmd)
		if c, ok := cmd.(*goredis.Cmd); ok {
			h.mu.Lock()
			h.reply, _ = c.Val().([]any)
			h.mu.Unlock()
		}
		close(h.replied)
		return err
	}
}

// TestStreamSiblingClaimTakesNoNewDelivery: a subscription that shares
// its consumer name with a running one takes back only the entries
// pending since before it started. An entry delivered to the other
// subscription after that start is never taken, however long the claim
// took to reach the server: here it is held back until the entry has
// been pending 30ms, which an idle time worked out on the client before
// sending would count as old enough.
func TestStreamSiblingClaimTakesNoNewDelivery(t *testing.T) {
	srv := redistest.Start(t)
	c := goredis.NewClient(srv.Options())
	h := &siblingClaimHook{group: "g", consumer: "c", held: make(chan struct{}),
		release: make(chan struct{}), replied: make(chan struct{})}
	c.AddHook(h)
	b, err := coordredis.New(c, &coordredis.Options{Prefix: "sib:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
		_ = b.Close(context.Background())
		_ = c.Close()
	})
	ctx := t.Context()
	st := b.Streams()
	gotA := make(chan string, 4)
	gotS := make(chan string, 4)
	block := make(chan struct{})
	defer close(block)
	opts := []coord.ConsumeOption{coord.ConsumerName("c"), coord.ClaimAfter(time.Minute)}
	handler := func(got chan string) func(context.Context, coord.StreamEntry) error {
		return func(_ context.Context, e coord.StreamEntry) error {
			got <- e.ID
			<-block // still running when the other subscription claims
			return nil
		}
	}
	a, err := st.Consume(ctx, "jobs", "g", handler(gotA), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Unsubscribe()
	// The first subscription's claim of its own entries (alone: no
	// sibling yet) is over before the second starts.
	coordtest.Eventually(t, 5*time.Second, func() bool { return h.claims.Load() > 0 }, "the first subscription's claim")
	s, err := st.Consume(ctx, "jobs", "g", handler(gotS), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	select {
	case <-h.held:
	case <-time.After(5 * time.Second):
		t.Fatal("the second subscription's claim of its own entries was not sent within 5s")
	}
	// While the claim is on its way: an entry, delivered to the first
	// subscription, which runs it.
	id, err := st.Append(ctx, "jobs", "report")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-gotA:
		if got != id {
			t.Fatalf("the first subscription got %s, want %s", got, id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the entry was not delivered within 5s")
	}
	key := "sib:st:{jobs}"
	coordtest.Eventually(t, 5*time.Second, func() bool {
		p, err := c.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: key, Group: "g", Idle: 30 * time.Millisecond,
			Start: id, End: id, Count: 1}).Result()
		return err == nil && len(p) == 1
	}, "the entry pending 30ms")
	close(h.release)
	select {
	case <-h.replied:
	case <-time.After(5 * time.Second):
		t.Fatal("the held claim did not return within 5s")
	}
	h.mu.Lock()
	reply := h.reply
	h.mu.Unlock()
	if len(reply) != 4 {
		t.Fatalf("claim reply %v, want 4 values", reply)
	}
	if taken, _ := reply[2].([]any); len(taken) != 0 {
		t.Fatalf("the second subscription took back %v, an entry delivered to the first after it started", taken)
	}
	p, err := c.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: key, Group: "g", Start: id, End: id, Count: 1}).Result()
	if err != nil || len(p) != 1 || p[0].RetryCount != 1 {
		t.Fatalf("pending entry %v (err %v), want it delivered once", p, err)
	}
	select {
	case got := <-gotS:
		t.Fatalf("the second subscription ran %s", got)
	default:
	}
}
