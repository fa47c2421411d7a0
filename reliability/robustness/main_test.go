package robustness

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/cgn-bot/coord/internal/redistest"
)

// TestMain checks that no test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goredis.SetLogger(quiet{})
	goleak.VerifyTestMain(m, redistest.GoleakOptions()...)
}

// quiet is a go-redis logger that discards: failed dials of a killed
// server are expected.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
