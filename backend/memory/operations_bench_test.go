package memory_test

import (
	"context"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/conformance"
)

// BenchmarkOperations measures every operation of every interface, with
// the same names as on the Redis backend:
//
//	go test -run '^$' -bench Operations -benchmem ./backend/memory/
func BenchmarkOperations(b *testing.B) {
	conformance.Benchmark(b, func(b *testing.B) conformance.BenchInstances {
		hub := memory.NewHub(nil)
		return func(b *testing.B) coord.Backend {
			n := hub.New(nil)
			b.Cleanup(func() { _ = n.Close(context.Background()) })
			return n
		}
	})
}
