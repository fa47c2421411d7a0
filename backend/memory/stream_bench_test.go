package memory_test

import (
	"context"
	"testing"

	"github.com/cgn-bot/coord/backend/memory"
)

// BenchmarkStreamAppend appends a small payload to one stream (target:
// ≤1µs per append).
func BenchmarkStreamAppend(b *testing.B) {
	n := memory.NewHub(nil).New(nil)
	defer n.Close(context.Background())
	s := n.Streams()
	ctx := context.Background()
	payload := 12345
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Append(ctx, "bench", payload); err != nil {
			b.Fatal(err)
		}
	}
}
