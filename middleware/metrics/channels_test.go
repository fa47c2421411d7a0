package metrics_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/middleware/logging"
	"github.com/cgn-bot/coord/middleware/metrics"
)

// TestChannelLabelsFromBackend: the channel label carries the Redis
// backend's own channel names, with its non-default prefix, without
// Options.ChannelPrefix being set, also behind another decorator; no
// series is labelled with the default prefix.
func TestChannelLabelsFromBackend(t *testing.T) {
	mr := miniredis.RunT(t)
	open := func(id string) coord.Backend {
		client := goredis.NewClient(&goredis.Options{Addr: mr.Addr()})
		b, err := coordredis.New(client, &coordredis.Options{Prefix: "app7:", InstanceID: id})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = b.Close(context.Background())
			_ = client.Close()
		})
		return b
	}
	m, reg := newMiddleware(t, &metrics.Options{Namespace: "skynetbot"})
	sub := m.Backend(logging.New(slog.New(slog.DiscardHandler), nil).Backend(open("sub")))
	pub := open("pub")
	ctx := t.Context()
	if _, err := sub.Invalidator().Subscribe(ctx, func(coord.Invalidation) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Events().Subscribe(ctx, "t", func(coord.Event) {}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Invalidator().Invalidate(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	if err := pub.Invalidator().InvalidatePattern(ctx, "k*", nil); err != nil {
		t.Fatal(err)
	}
	if err := pub.Events().Publish(ctx, "t", nil); err != nil {
		t.Fatal(err)
	}
	const name = "skynetbot_distributed_cache_messages_received_total"
	want := []string{"app7:cache:invalidate", "app7:cache:invalidate:pattern", "app7:shard:event"}
	deadline := time.Now().Add(5 * time.Second)
	for _, ch := range want {
		for {
			if v, _ := value(t, reg, name, "channel", ch); v >= 1 || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		expect(t, reg, 1, name, "channel", ch)
	}
	for _, ch := range []string{"cgn:cache:invalidate", "cgn:cache:invalidate:pattern", "cgn:shard:event"} {
		if _, ok := value(t, reg, name, "channel", ch); ok {
			t.Errorf("a series is labelled with the default channel %s", ch)
		}
	}
}
