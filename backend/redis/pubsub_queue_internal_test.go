package redis

import (
	"testing"

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
