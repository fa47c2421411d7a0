package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"sync"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/conformance"
	"github.com/cgn-bot/coord/middleware/logging"
)

// harness gives the suite memory nodes of one hub, each decorated by wrap.
type harness struct {
	hub  *memory.Hub
	wrap func(coord.Backend) coord.Backend
}

var (
	_ conformance.SubscriptionCutter = (*harness)(nil)
	_ conformance.ForeignPublisher   = (*harness)(nil)
)

func (h *harness) NewInstance(t *testing.T) coord.Backend {
	b := h.wrap(h.hub.New(nil))
	t.Cleanup(func() { _ = b.Close(context.WithoutCancel(t.Context())) })
	return b
}

func (h *harness) Capabilities() conformance.Capabilities {
	return conformance.Capabilities{CutSubscription: true, ForeignPublish: true}
}

// PublishRaw publishes raw bytes on one of the hub's wire channels, as
// another program would.
func (h *harness) PublishRaw(t *testing.T, channel string, payload []byte) {
	if err := h.hub.PublishRaw(channel, payload); err != nil {
		t.Fatalf("PublishRaw(%q): %v", channel, err)
	}
}

// CutSubscription reaches the memory node through the decorator.
func (h *harness) CutSubscription(t *testing.T, instance coord.Backend) {
	var n *memory.Backend
	if !coord.As(instance, &n) {
		t.Fatalf("coord.As found no *memory.Backend in %T", instance)
	}
	n.CutSubscription()
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// sessionToken matches a session token anywhere (see internal/secret).
var sessionToken = regexp.MustCompile(`s1\.[A-Za-z0-9_-]{43}`)

// tag matches what a token may be logged as.
var tag = regexp.MustCompile(`^[0-9a-f]{8}$`)

// TestConformance runs the suite on memory nodes decorated by logging at
// Debug (every record built and written), proof that the decorator
// changes nothing the suite can see. Each case's records are then
// checked: no session token anywhere, and every token attribute a tag.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		out := &lockedBuffer{}
		logger := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
		l := logging.New(logger, nil)
		t.Cleanup(func() { checkRecords(t, out.Bytes()) })
		return &harness{hub: memory.NewHub(nil), wrap: l.Backend}
	})
}

func checkRecords(t *testing.T, out []byte) {
	if m := sessionToken.Find(out); m != nil {
		t.Errorf("a session token appears in the log: %s", m)
	}
	for line := range bytes.Lines(out) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Errorf("unreadable record %q: %v", line, err)
			continue
		}
		for _, key := range []string{"token", "session", "new_session"} {
			v, ok := rec[key]
			if !ok || v == "" {
				continue
			}
			if s, _ := v.(string); !tag.MatchString(s) {
				t.Errorf("attribute %s = %v is not an 8-character tag", key, v)
			}
		}
	}
}
