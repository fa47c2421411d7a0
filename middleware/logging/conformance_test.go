package logging_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"regexp"
	"testing"

	"github.com/cgn-bot/coord/conformance"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/coordtest/memharness"
	"github.com/cgn-bot/coord/middleware/logging"
)

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
		out := &coordtest.SyncBuffer{}
		logger := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
		l := logging.New(logger, nil)
		t.Cleanup(func() { checkRecords(t, out.Bytes()) })
		return memharness.New(l.Backend)
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
