package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, redistest.GoleakOptions()...)
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
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

// result is the outcome of one run of coordctl.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// env runs coordctl against one server with a key prefix of its own.
type env struct {
	t      *testing.T
	url    string
	prefix string
	client goredis.UniversalClient
	b      *coordredis.Backend // a service instance on the same prefix
}

var prefixSeq atomic.Int64

// newEnv returns an env on srv with a new prefix, and a Backend on it.
func newEnv(t *testing.T, srv *redistest.Server) *env {
	t.Helper()
	e := &env{t: t, url: srv.URL(), prefix: fmt.Sprintf("ctl%d:", prefixSeq.Add(1)), client: srv.Client(t)}
	b, err := coordredis.New(e.client, &coordredis.Options{Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	e.b = b
	return e
}

// cli returns a cli with the given streams; stdin is empty when nil. The
// environment is empty: the server comes from --url.
func (e *env) cli(stdin io.Reader, stdout, stderr io.Writer) *cli {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	return newCLI(stdin, stdout, stderr, func(string) string { return "" })
}

// args prepends the connection flags to args.
func (e *env) args(args ...string) []string {
	return append([]string{"--url", e.url, "--prefix", e.prefix}, args...)
}

// run runs coordctl with the connection flags and args.
func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.runCLI(context.Background(), nil, nil, e.args(args...))
}

// runCLI runs c (nil: e.cli with empty stdin) on args, as given, and
// returns its outcome.
func (e *env) runCLI(ctx context.Context, c *cli, stdin io.Reader, args []string) result {
	e.t.Helper()
	var out, errb syncBuffer
	if c == nil {
		c = e.cli(stdin, &out, &errb)
	} else {
		c.stdout, c.stderr = &out, &errb
	}
	code := c.main(ctx, args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// within polls cond every few milliseconds and fails the test when it is
// still false after d.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
