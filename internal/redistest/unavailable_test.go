package redistest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// fakeTB records how Start gives up, so both the CI=true and the local
// behaviour can be checked without failing or skipping this test.
type fakeTB struct {
	testing.TB // only the methods below are called
	t          *testing.T
	fatal      string
	skip       string
	cleanups   []func()
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Failed() bool      { return f.fatal != "" }
func (f *fakeTB) TempDir() string   { return f.t.TempDir() }
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Logf(format string, args ...any) {
	f.t.Logf(format, args...)
}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.t.Errorf(format, args...)
}
func (f *fakeTB) Fatal(args ...any) {
	f.fatal = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls start with a fake TB on its own goroutine (Fatal and Skip end
// it with Goexit), then runs the registered cleanups.
func (f *fakeTB) run(start func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		start(f)
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ci       string
		noBinary bool
		opts     []Option
		want     string
	}{
		{"missing binary, local", "", true, nil, "redis-server not found"},
		{"missing binary, CI", "true", true, nil, "redis-server not found"},
		{"bad config, local", "", false, []Option{WithArgs("--no-such-directive", "1")}, "no-such-directive"},
		{"bad config, CI", "true", false, []Option{WithArgs("--no-such-directive", "1")}, "no-such-directive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.noBinary && Available() != nil {
				Start(t) // skips or fails with the reason
			}
			t.Setenv("CI", tc.ci)
			if tc.noBinary {
				t.Setenv("PATH", t.TempDir())
			}
			f := &fakeTB{t: t}
			f.run(func(tb testing.TB) { Start(tb, tc.opts...) })
			got := f.skip
			if tc.ci == "true" {
				if f.skip != "" {
					t.Fatalf("skipped under CI=true: %s", f.skip)
				}
				got = f.fatal
			} else if f.fatal != "" {
				t.Fatalf("failed outside CI: %s", f.fatal)
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("reason %q does not contain %q", got, tc.want)
			}
			t.Logf("reason: %s", got)
		})
	}
}

func TestClusterTooSmall(t *testing.T) {
	f := &fakeTB{t: t}
	f.run(func(tb testing.TB) { StartCluster(tb, 2) })
	if !strings.Contains(f.fatal, "at least 3") {
		t.Fatalf("StartCluster(2): fatal %q, skip %q", f.fatal, f.skip)
	}
}
