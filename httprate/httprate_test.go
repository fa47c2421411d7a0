package httprate_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/coordmock"
	"github.com/cgn-bot/coord/httprate"
	"go.uber.org/mock/gomock"
)

func node(t *testing.T) *memory.Backend {
	t.Helper()
	n := memory.NewHub(nil).New(nil)
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })

func get(h http.Handler, remote string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/x", nil)
	r.RemoteAddr = remote
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestLimitsByIPWithHeaders(t *testing.T) {
	l := coord.Limit{Name: "api", Rate: 2, Period: time.Minute}
	mw, err := httprate.New(node(t).RateLimiter(), l, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := mw(ok)
	for i := range 2 {
		w := get(h, "192.0.2.1:1234")
		if w.Code != http.StatusOK {
			t.Fatalf("request %d: %d", i+1, w.Code)
		}
		if got := w.Header().Get("RateLimit-Remaining"); got != strconv.Itoa(1-i) {
			t.Fatalf("request %d: RateLimit-Remaining %q", i+1, got)
		}
		if w.Header().Get("RateLimit-Limit") != "2" || w.Header().Get("RateLimit-Policy") != "2;w=60;burst=2" {
			t.Fatalf("headers %v", w.Header())
		}
		if w.Header().Get("Retry-After") != "" {
			t.Fatalf("Retry-After on an allowed request")
		}
	}
	w := get(h, "192.0.2.1:999")
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("third request from one IP: %d, want 429", w.Code)
	}
	ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || ra < 29 || ra > 30 {
		t.Fatalf("Retry-After %q, want 30 (one interval of 2 a minute, rounded up)", w.Header().Get("Retry-After"))
	}
	if w.Header().Get("RateLimit-Remaining") != "0" || w.Header().Get("RateLimit-Reset") != "60" {
		t.Fatalf("headers of the 429: %v", w.Header())
	}
	if w := get(h, "198.51.100.7:1"); w.Code != http.StatusOK {
		t.Fatalf("another IP: %d", w.Code)
	}
}

// TestNeverAllowsOnError: a limiter that fails never lets a request
// through.
func TestNeverAllowsOnError(t *testing.T) {
	ctrl := gomock.NewController(t)
	rl := coordmock.NewMockRateLimiter(ctrl)
	rl.EXPECT().Allow(gomock.Any(), gomock.Any(), gomock.Any(), 1).
		Return(coord.RateDecision{Allowed: true}, errors.Join(coord.ErrUnavailable, errors.New("down"))).AnyTimes()
	mw, err := httprate.New(rl, coord.PerSecond(10), nil)
	if err != nil {
		t.Fatal(err)
	}
	called := false
	w := get(mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true })), "192.0.2.1:1")
	if called || w.Code != http.StatusServiceUnavailable {
		t.Fatalf("limiter error: handler called %v, status %d; want not called, 503", called, w.Code)
	}
}

func TestKeyFuncs(t *testing.T) {
	n := node(t)
	l := coord.Limit{Rate: 1, Period: time.Minute}
	user := func(r *http.Request) string { return r.Header.Get("X-User") }
	mw, err := httprate.New(n.RateLimiter(), l, &httprate.Options{Key: httprate.Join(httprate.ByUser(user), httprate.ByRoute)})
	if err != nil {
		t.Fatal(err)
	}
	h := mw(ok)
	req := func(u, path string) int {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if u != "" {
			r.Header.Set("X-User", u)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if req("ann", "/a") != 200 || req("ann", "/b") != 200 || req("bob", "/a") != 200 {
		t.Fatal("first request of a user on a route denied")
	}
	if c := req("ann", "/a"); c != 429 {
		t.Fatalf("second request of ann on /a: %d", c)
	}
	if c := req("", "/a"); c != 400 {
		t.Fatalf("request without a user: %d, want 400", c)
	}
	if c := req("eve\x01", "/a"); c != 400 {
		t.Fatalf("request with a control character in its key: %d, want 400", c)
	}
	hdr, err := httprate.New(n.RateLimiter(), l, &httprate.Options{Key: httprate.ByHeader("X-Forwarded-For"), Prefix: "xff:"})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Forwarded-For", "203.0.113.9, 10.0.0.1")
	w := httptest.NewRecorder()
	hdr(ok).ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("X-Forwarded-For: %d", w.Code)
	}
	if d, err := n.RateLimiter().Peek(t.Context(), "xff:h:203.0.113.9", l); err != nil || d.Remaining != 0 {
		t.Fatalf("the key of the first X-Forwarded-For address: %+v, %v", d, err)
	}
}

func TestBadLimitAndCost(t *testing.T) {
	n := node(t)
	if _, err := httprate.New(n.RateLimiter(), coord.Limit{Rate: 0, Period: time.Second}, nil); !errors.Is(err, coord.ErrInvalid) {
		t.Fatalf("New with Rate 0: %v", err)
	}
	mw, err := httprate.New(n.RateLimiter(), coord.PerSecond(2), &httprate.Options{Cost: func(*http.Request) int { return 3 }})
	if err != nil {
		t.Fatal(err)
	}
	if w := get(mw(ok), "192.0.2.1:1"); w.Code != http.StatusInternalServerError {
		t.Fatalf("cost over the burst: %d, want 500", w.Code)
	}
}
