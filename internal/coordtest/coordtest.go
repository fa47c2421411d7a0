// Package coordtest holds the helpers the module's tests share: waiting
// for a condition with a deadline, checking whether a channel is closed,
// recording what a handler receives, and a buffer that a logger or a
// child process writes to while the test reads it.
//
// Only _test.go files import it (TestOnlyTestsImport checks this), and it
// imports only the standard library, so the internal tests of any package
// of the module, coord and backend/memory included, can use it without an
// import cycle. The exported conformance suite keeps its own helpers: its
// users cannot import an internal package.
package coordtest

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// PollEvery is how often Eventually checks its condition.
const PollEvery = 5 * time.Millisecond

// Eventually fails tb unless cond returns true within d, and returns how
// long it took. cond is called at once, then every PollEvery until it
// returns true or d has passed; the failure message is "not within d: "
// and format applied to args. Like tb.Fatalf, it must be called from the
// test's goroutine.
//
// d bounds a broken mechanism, not a slow one: choose it so that a loaded
// machine meets it with a wide margin, and measure speed in benchmarks.
func Eventually(tb testing.TB, d time.Duration, cond func() bool, format string, args ...any) time.Duration {
	tb.Helper()
	took, ok := Poll(d, PollEvery, cond)
	if !ok {
		tb.Fatalf("not within %v: %s", d, fmt.Sprintf(format, args...))
	}
	return took
}

// Poll reports whether cond returns true within d, calling it at once and
// then every interval, and how long it took (or waited, when it did not).
// It is for the tests that handle a timeout themselves; Eventually fails
// the test instead.
func Poll(d, every time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	deadline := start.Add(d)
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Now().After(deadline) {
			return time.Since(start), false
		}
		time.Sleep(every)
	}
}

// ClosedWithin reports whether ch is closed (or receives) within d. A
// channel already closed is reported closed whatever d.
func ClosedWithin(ch <-chan struct{}, d time.Duration) bool {
	if IsClosed(ch) {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// IsClosed reports whether ch is closed (or has a value ready) now,
// without waiting.
func IsClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Recorder collects what a handler receives, in the order of the calls
// to Add. Its zero value is ready to use, and it is safe for concurrent
// use by multiple goroutines.
type Recorder[T any] struct {
	mu    sync.Mutex
	items []T
}

// Add records v.
func (r *Recorder[T]) Add(v T) {
	r.mu.Lock()
	r.items = append(r.items, v)
	r.mu.Unlock()
}

// All returns a copy of what was recorded so far.
func (r *Recorder[T]) All() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.items)
}

// Count returns how many of the recorded values f accepts.
func (r *Recorder[T]) Count(f func(T) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.items {
		if f(v) {
			n++
		}
	}
	return n
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers:
// the output of a logger or a process that a test reads while it runs.
// Its zero value is an empty buffer ready to use.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Bytes returns a copy of what was written so far.
func (b *SyncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
