package tracing_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/cgn-bot/coord/internal/coordtest"
)

func TestMain(m *testing.M) {
	coordtest.DefaultParallel(coordtest.SuiteParallel)
	goleak.VerifyTestMain(m)
}
