package health_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/cgn-bot/coord/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, redistest.GoleakOptions()...)
}
