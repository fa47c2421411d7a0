package health_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/health"
)

// fixed is a backend whose Health is set by the test.
type fixed struct {
	coord.Backend
	h      coord.Health
	sawCtx chan bool
}

func (f *fixed) Health(ctx context.Context) coord.Health {
	if f.sawCtx != nil {
		_, ok := ctx.Deadline()
		f.sawCtx <- ok
	}
	return f.h
}

func get(t *testing.T, h http.Handler, method string) (*http.Response, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "/healthz", nil))
	res := rec.Result()
	var doc map[string]any
	if method == http.MethodGet && res.StatusCode != http.StatusMethodNotAllowed {
		if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
			t.Fatalf("decoding the body: %v", err)
		}
	}
	return res, doc
}

func TestShapeAndStatus(t *testing.T) {
	cases := []struct {
		name   string
		h      coord.Health
		code   int
		expect string
	}{
		{"healthy", coord.Health{Status: coord.Healthy, Backend: "redis", Connection: coord.Connected, Subscriber: coord.Connected,
			Latency: 2 * time.Millisecond, MessagesReceived: 1234, Sessions: 567},
			200, `{"redis":{"connected":true,"state":"connected","latency":2},"cache":{"initialized":true,"messageCount":1234},"sessions":{"count":567},"overall":"healthy","backend":"redis"}`},
		{"degraded", coord.Health{Status: coord.Degraded, Backend: "redis", Connection: coord.Connected, Subscriber: coord.Reconnecting,
			Latency: 1500 * time.Microsecond, Sessions: 0, Error: "subscriber reconnecting"},
			200, `{"redis":{"connected":true,"state":"connected","latency":1.5},"cache":{"initialized":false,"messageCount":0},"sessions":{"count":0},"overall":"degraded","backend":"redis","error":"subscriber reconnecting"}`},
		{"unhealthy", coord.Health{Status: coord.Unhealthy, Backend: "redis", Connection: coord.Reconnecting, Subscriber: coord.Disconnected,
			Sessions: -1, Error: "connection refused"},
			503, `{"redis":{"connected":false,"state":"reconnecting","latency":0},"cache":{"initialized":false,"messageCount":0},"sessions":{"count":null},"overall":"unhealthy","backend":"redis","error":"connection refused"}`},
		{"empty", coord.Health{Sessions: -1},
			503, `{"redis":{"connected":false,"state":"disconnected","latency":0},"cache":{"initialized":false,"messageCount":0},"sessions":{"count":null},"overall":"unhealthy"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := health.Handler(&fixed{h: c.h}, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			if rec.Code != c.code {
				t.Errorf("status %d, want %d", rec.Code, c.code)
			}
			if got := strings.TrimSpace(rec.Body.String()); got != c.expect {
				t.Errorf("body\n got %s\nwant %s", got, c.expect)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
		})
	}
}

func TestMethods(t *testing.T) {
	h := health.Handler(&fixed{h: coord.Health{Status: coord.Unhealthy}}, nil)
	res, _ := get(t, h, http.MethodHead)
	if res.StatusCode != 503 {
		t.Errorf("HEAD: %d, want 503", res.StatusCode)
	}
	res, _ = get(t, h, http.MethodPost)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") == "" {
		t.Errorf("POST: %d Allow %q, want 405 with Allow", res.StatusCode, res.Header.Get("Allow"))
	}
}

func TestTimeoutBoundsHealth(t *testing.T) {
	f := &fixed{h: coord.Health{Status: coord.Healthy}, sawCtx: make(chan bool, 1)}
	h := health.Handler(f, &health.Options{Timeout: time.Second})
	get(t, h, http.MethodGet)
	if !<-f.sawCtx {
		t.Error("Health was called without a deadline")
	}
}

func TestMemoryBackend(t *testing.T) {
	ctx := t.Context()
	hub := memory.NewHub(nil)
	a, b := hub.New(nil), hub.New(nil)
	defer b.Close(context.Background())
	if _, err := a.Sessions().Create(ctx, "u1", nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(health.Handler(a, nil))
	defer srv.Close()

	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var rep health.Report
	if err := json.NewDecoder(res.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || rep.Overall != coord.Healthy || !rep.Redis.Connected || !rep.Cache.Initialized ||
		rep.Sessions.Count == nil || *rep.Sessions.Count != 1 || rep.Backend != "memory" {
		t.Errorf("open node: %d %+v", res.StatusCode, rep)
	}

	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	res, err = http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("closed node: %d, want 503", res.StatusCode)
	}
}
