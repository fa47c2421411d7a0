package redis

import (
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/redistest"
)

// The queue itself is tested in internal/subq.

// TestInvalidationQueueDefault: invalidation subscriptions get
// coord.DefaultInvalidationQueueSize and event subscriptions
// coord.DefaultQueueSize unless Options.QueueSize or WithQueueSize sets a
// size.
func TestInvalidationQueueDefault(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	for _, c := range []struct {
		optSize, subSize, wantInv, wantEv int
	}{
		{0, 0, coord.DefaultInvalidationQueueSize, coord.DefaultQueueSize},
		{100, 0, 100, 100},
		{0, 5, 5, 5},
		{100, 7, 7, 7},
	} {
		client := goredis.NewClient(srv.Options())
		b, err := New(client, &Options{QueueSize: c.optSize})
		if err != nil {
			t.Fatal(err)
		}
		var opts []coord.SubscribeOption
		if c.subSize > 0 {
			opts = append(opts, coord.WithQueueSize(c.subSize))
		}
		is, err := b.Invalidator().Subscribe(ctx, func(coord.Invalidation) {}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		es, err := b.Events().Subscribe(ctx, "t", func(coord.Event) {}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if got := is.(*invSub).Limit(); got != c.wantInv {
			t.Errorf("Options.QueueSize %d, WithQueueSize %d: invalidation queue %d, want %d", c.optSize, c.subSize, got, c.wantInv)
		}
		if got := es.(*evSub).Limit(); got != c.wantEv {
			t.Errorf("Options.QueueSize %d, WithQueueSize %d: event queue %d, want %d", c.optSize, c.subSize, got, c.wantEv)
		}
		if err := b.Close(ctx); err != nil {
			t.Fatal(err)
		}
		_ = client.Close()
	}
}

// TestQueueBytesAndPingDefaults: Options.QueueBytes sets the Backend's
// byte budget (0: coord.DefaultQueueBytes, negative: none), and the
// subscriber is pinged every second with a one-second deadline unless
// HealthInterval and PingTimeout say otherwise.
func TestQueueBytesAndPingDefaults(t *testing.T) {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = client.Close() })
	for _, c := range []struct{ opt, want int64 }{{0, coord.DefaultQueueBytes}, {1 << 20, 1 << 20}, {-1, 0}} {
		b, err := New(client, &Options{QueueBytes: c.opt})
		if err != nil {
			t.Fatal(err)
		}
		if got := b.budget.Limit(); got != c.want {
			t.Errorf("QueueBytes %d: budget %d, want %d", c.opt, got, c.want)
		}
		if b.opts.HealthInterval != time.Second || b.opts.PingTimeout != time.Second {
			t.Errorf("HealthInterval %v, PingTimeout %v, want 1s and 1s", b.opts.HealthInterval, b.opts.PingTimeout)
		}
	}
	b, err := New(client, &Options{HealthInterval: 3 * time.Second, PingTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if b.opts.HealthInterval != 3*time.Second || b.opts.PingTimeout != 2*time.Second {
		t.Errorf("HealthInterval %v, PingTimeout %v, want 3s and 2s", b.opts.HealthInterval, b.opts.PingTimeout)
	}
}
