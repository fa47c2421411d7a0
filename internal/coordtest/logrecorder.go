package coordtest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
)

// LogRecord is one slog record as a [LogRecorder] kept it: its level, its
// message, and its attributes (those given to WithAttrs included) as
// strings.
type LogRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

// Text renders the record, message and attribute values quoted, for a
// failure message or for scanning it for a secret.
func (r LogRecord) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q", r.Level, r.Msg)
	for _, k := range slices.Sorted(maps.Keys(r.Attrs)) {
		fmt.Fprintf(&b, " %s=%q", k, r.Attrs[k])
	}
	return b.String()
}

// LogRecorder is a [slog.Handler] that keeps every record at or above its
// level, for a test to read what a component logged. Handlers derived
// with WithAttrs share its records; WithGroup is ignored (attribute keys
// are kept unqualified). It is safe for concurrent use.
type LogRecorder struct {
	level slog.Level
	mu    *sync.Mutex
	recs  *[]LogRecord
	attrs []slog.Attr
}

// NewLogRecorder returns a LogRecorder that keeps the records at or above
// level.
func NewLogRecorder(level slog.Level) *LogRecorder {
	return &LogRecorder{level: level, mu: new(sync.Mutex), recs: new([]LogRecord)}
}

// Enabled reports whether l is at or above the recorder's level.
func (h *LogRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

// Handle keeps r.
func (h *LogRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := LogRecord{Level: r.Level, Msg: r.Message, Attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.Attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	*h.recs = append(*h.recs, rec)
	h.mu.Unlock()
	return nil
}

// WithAttrs returns a handler that adds as to its records and keeps them
// with h's.
func (h *LogRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(slices.Clone(h.attrs), as...)
	return &c
}

// WithGroup returns h: groups are not recorded.
func (h *LogRecorder) WithGroup(string) slog.Handler { return h }

// All returns a copy of the records kept so far, in the order they were
// handled.
func (h *LogRecorder) All() []LogRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.recs)
}

// Find returns the records whose message contains msg.
func (h *LogRecorder) Find(msg string) []LogRecord {
	var out []LogRecord
	for _, r := range h.All() {
		if strings.Contains(r.Msg, msg) {
			out = append(out, r)
		}
	}
	return out
}
