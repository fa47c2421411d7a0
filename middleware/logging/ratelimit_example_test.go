package logging_test

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/middleware/logging"
)

// A denial is a decision, not a failure: it is logged at DEBUG with its
// retry time, like an allowed event.
func ExampleMiddleware_RateLimiter() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey, "duration":
				return slog.Attr{}
			case "retry_after": // to the second: it runs down as the test runs
				a.Value = slog.DurationValue(a.Value.Duration().Round(time.Second))
			}
			return a
		},
	}))
	ctx := context.Background()
	n := memory.NewHub(nil).New(nil)
	defer n.Close(ctx)
	rl := logging.New(logger, nil).RateLimiter(n.RateLimiter())
	login := coord.Limit{Name: "login", Rate: 1, Period: time.Hour}

	_, _ = rl.Allow(ctx, "user:42", login, 1)
	_, _ = rl.Allow(ctx, "user:42", login, 1)
	// Output:
	// level=DEBUG msg="coord rate_allow" op=rate_allow outcome=ok key=user:42 limit=login n=1 decision=allowed remaining=0
	// level=DEBUG msg="coord rate_allow" op=rate_allow outcome=ok key=user:42 limit=login n=1 decision=denied remaining=0 retry_after=1h0m0s
}
