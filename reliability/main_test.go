package reliability

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"go.uber.org/goleak"

	"github.com/cgn-bot/coord/internal/redistest"
)

// TestMain checks that no test leaves a goroutine behind. The options
// ignore only go-redis's dial probe, which outlives a client whose server
// was killed by up to a second (see redistest.GoleakOptions).
func TestMain(m *testing.M) {
	// go-redis logs every failed dial of a killed server; the tests
	// assert on what matters instead.
	goredis.SetLogger(quiet{})
	goleak.VerifyTestMain(m, redistest.GoleakOptions()...)
}

// quiet is a go-redis logger that discards.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
