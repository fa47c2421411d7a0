package coordtest

import (
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeTB records Fatalf and, like testing.T, ends the goroutine that
// called it.
type fakeTB struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) message() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal
}

// runEventually calls Eventually with tb on a goroutine of its own (Fatalf
// ends it) and returns whether Eventually returned and what it returned.
func runEventually(tb *fakeTB, d time.Duration, cond func() bool, format string, args ...any) (time.Duration, bool) {
	var took time.Duration
	returned := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		took = Eventually(tb, d, cond, format, args...)
		returned = true
	}()
	<-done
	return took, returned
}

func TestEventuallyReturnsOnceTrue(t *testing.T) {
	var calls atomic.Int32
	tb := &fakeTB{}
	took, returned := runEventually(tb, 10*time.Second, func() bool { return calls.Add(1) == 3 }, "third call")
	if !returned || tb.message() != "" {
		t.Fatalf("Eventually failed the test (%q) for a condition true at the third call", tb.message())
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("cond called %d times, want 3 (it stops at the first true)", n)
	}
	// Two polls passed before the third call: at least 2*PollEvery.
	if took < 2*PollEvery {
		t.Errorf("Eventually returned %v, less than the two polls it waited", took)
	}
}

func TestEventuallyFailsWithMessage(t *testing.T) {
	const d = 50 * time.Millisecond
	tb := &fakeTB{}
	start := time.Now()
	_, returned := runEventually(tb, d, func() bool { return false }, "%d callers joined %s", 3, "the load")
	if returned {
		t.Fatal("Eventually returned for a condition never true")
	}
	if waited := time.Since(start); waited < d {
		t.Errorf("Eventually failed after %v, before its deadline %v", waited, d)
	}
	if want := "not within 50ms: 3 callers joined the load"; tb.message() != want {
		t.Errorf("message = %q, want %q", tb.message(), want)
	}
}

func TestPoll(t *testing.T) {
	calls := 0
	if took, ok := Poll(time.Hour, time.Hour, func() bool { calls++; return true }); !ok || calls != 1 || took >= time.Hour {
		t.Errorf("Poll of a true condition = %v, %v after %d calls, want at once after 1 call", took, ok, calls)
	}
	calls = 0
	took, ok := Poll(20*time.Millisecond, time.Millisecond, func() bool { calls++; return false })
	if ok {
		t.Error("Poll of a false condition reported true")
	}
	if took < 20*time.Millisecond || calls < 2 {
		t.Errorf("Poll gave up after %v and %d calls, want at least 20ms and 2 calls", took, calls)
	}
}

func TestClosedWithin(t *testing.T) {
	closed := make(chan struct{})
	close(closed)
	if !ClosedWithin(closed, 0) || !IsClosed(closed) {
		t.Error("a closed channel is not reported closed")
	}
	open := make(chan struct{})
	if IsClosed(open) {
		t.Error("IsClosed(open channel) = true")
	}
	start := time.Now()
	if ClosedWithin(open, 20*time.Millisecond) {
		t.Error("ClosedWithin(open channel) = true")
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Errorf("ClosedWithin gave up after %v, before 20ms", waited)
	}
	later := make(chan struct{})
	go func() {
		time.Sleep(10 * time.Millisecond)
		close(later)
	}()
	if !ClosedWithin(later, 10*time.Second) {
		t.Error("ClosedWithin missed a close while it waited")
	}
}

func TestRecorder(t *testing.T) {
	var r Recorder[int]
	if got := r.All(); len(got) != 0 {
		t.Fatalf("zero Recorder holds %v", got)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 100 {
				r.Add(i*100 + j)
			}
		})
	}
	wg.Wait()
	all := r.All()
	if len(all) != 400 {
		t.Fatalf("recorded %d values, want 400", len(all))
	}
	if n := r.Count(func(v int) bool { return v%2 == 0 }); n != 200 {
		t.Errorf("Count(even) = %d, want 200", n)
	}
	all[0] = -1
	if r.Count(func(v int) bool { return v < 0 }) != 0 {
		t.Error("All returned the Recorder's own slice, not a copy")
	}
	r.Add(7)
	if got := r.All(); got[len(got)-1] != 7 {
		t.Errorf("the last value recorded is %d, want 7 (the order of Add)", got[len(got)-1])
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("ab"))
				_ = b.String() // a reader while the writers run
			}
		})
	}
	wg.Wait()
	if got := b.String(); len(got) != 800 || strings.Count(got, "ab") != 400 {
		t.Fatalf("after 400 writes of %q: %d bytes, %d of them", "ab", len(got), strings.Count(got, "ab"))
	}
	out := b.Bytes()
	out[0] = 'x'
	if b.String()[0] != 'a' {
		t.Error("Bytes returned the buffer's own bytes, not a copy")
	}
}

// TestOnlyTestsImport checks that no package of the module imports
// coordtest from its non-test files, and that coordtest imports only the
// standard library.
func TestOnlyTestsImport(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the packages with")
	}
	const self = "github.com/cgn-bot/coord/internal/coordtest"
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-f", `{{.ImportPath}}:{{range .Imports}} {{.}}{{end}}`,
		"github.com/cgn-bot/coord/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	listed := 0
	for line := range strings.Lines(string(out)) {
		pkg, imports, _ := strings.Cut(strings.TrimSpace(line), ":")
		listed++
		for imp := range strings.FieldsSeq(imports) {
			if imp == self || strings.HasPrefix(imp, self+"/") {
				t.Errorf("%s imports %s outside its tests", pkg, imp)
			}
		}
	}
	if listed < 10 {
		t.Fatalf("go list named %d packages, want the whole module:\n%s", listed, out)
	}
	out, err = exec.CommandContext(t.Context(), goTool, "list", "-f", `{{range .Deps}}{{.}} {{end}}`, self).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for dep := range strings.FieldsSeq(string(out)) {
		if first, _, _ := strings.Cut(dep, "/"); strings.Contains(first, ".") {
			t.Errorf("coordtest depends on %s, outside the standard library", dep)
		}
	}
}
