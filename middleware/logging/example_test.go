package logging_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/middleware/logging"
)

// The logging decorator wraps a whole backend. Lock tokens appear only as
// a short tag; here the tag, the fence and the times are dropped because
// they change from run to run.
func ExampleMiddleware_Backend() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey, "duration", "held", "token", "fence", "error":
				return slog.Attr{}
			}
			return a
		},
	}))
	ctx := context.Background()
	b := logging.New(logger, nil).Backend(memory.NewHub(nil).New(&memory.Options{InstanceID: "node-1"}))

	_ = coord.WithLock(ctx, b.Locker(), "nightly-report", func(ctx context.Context) error {
		// A second try while the lease is held fails at once.
		_, err := b.Locker().Acquire(ctx, "nightly-report", coord.WithRetry(0, 0))
		return err
	})
	_ = b.Close(ctx)
	// Output:
	// level=DEBUG msg="coord lock_acquire" op=lock_acquire outcome=ok resource=nightly-report
	// level=DEBUG msg="coord lock_acquire" op=lock_acquire outcome=not_acquired resource=nightly-report
	// level=DEBUG msg="coord lock_release" op=lock_release outcome=ok resource=nightly-report
	// level=DEBUG msg="coord close" op=close outcome=ok instance=node-1
}
