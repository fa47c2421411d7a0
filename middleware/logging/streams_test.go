package logging_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/middleware/logging"
)

// syncBuffer is a bytes.Buffer safe for the handler goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStreamHandlerFailureLogged(t *testing.T) {
	var buf syncBuffer
	m := logging.New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	b := m.Backend(memory.NewHub(nil).New(nil))
	defer b.Close(context.Background())
	s := b.Streams()
	var calls atomic.Int32
	sub, err := s.Consume(t.Context(), "orders", "billing", func(context.Context, coord.StreamEntry) error {
		if calls.Add(1) == 1 {
			return errors.New("card declined")
		}
		return nil
	}, coord.ClaimAfter(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	id, err := s.Append(t.Context(), "orders", map[string]string{"card": "4111-secret"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for calls.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the entry was not delivered again")
		}
		time.Sleep(2 * time.Millisecond)
	}
	out := buf.String()
	for _, want := range []string{"stream handler failed", "id=" + id, "deliveries=1", "card declined", "op=stream_append", "op=stream_consume", "group=billing"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "4111-secret") {
		t.Errorf("the log holds the payload:\n%s", out)
	}
}
