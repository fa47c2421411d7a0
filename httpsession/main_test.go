package httpsession_test

import (
	"testing"

	"github.com/cgn-bot/coord/internal/redistest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The Redis test kills its server under live clients.
	goleak.VerifyTestMain(m, redistest.GoleakOptions()...)
}
