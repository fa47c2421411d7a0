package health_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/health"
	"github.com/cgn-bot/coord/internal/coordtest"
	"github.com/cgn-bot/coord/internal/redistest"
)

// probe GETs path from a mux with every handler and returns the code and
// the decoded body.
func probe(t *testing.T, mux *http.ServeMux, path string) (int, health.ProbeReport) {
	t.Helper()
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var rep health.ProbeReport
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("GET %s: decoding %q: %v", path, rec.Body.String(), err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	return rec.Code, rep
}

func muxFor(b coord.Backend, opts *health.Options) *http.ServeMux {
	mux := http.NewServeMux()
	health.Register(mux, b, opts)
	return mux
}

// TestProbesPerStatus checks each probe's verdict for each backend
// status: liveness stays 200 while the backend is unhealthy, readiness
// counts degraded as ready.
func TestProbesPerStatus(t *testing.T) {
	node := memory.NewHub(nil).New(nil)
	defer node.Close(context.Background())
	cases := []struct {
		h               coord.Health
		live, ready, hz int
		liveSt, readySt string
	}{
		{coord.Health{Status: coord.Healthy, Connection: coord.Connected, Subscriber: coord.Connected, Sessions: 3}, 200, 200, 200, "ok", "ok"},
		{coord.Health{Status: coord.Degraded, Connection: coord.Connected, Subscriber: coord.Reconnecting, Sessions: 3, Error: "coord/redis: subscriber connection reconnecting"}, 200, 200, 200, "ok", "ok"},
		{coord.Health{Status: coord.Unhealthy, Connection: coord.Reconnecting, Subscriber: coord.Reconnecting, Sessions: -1, Error: "coord: backend unavailable: coord/redis: ping: connection refused"}, 200, 503, 503, "ok", "fail"},
	}
	for _, c := range cases {
		t.Run(string(c.h.Status), func(t *testing.T) {
			c.h.Backend = "redis"
			mux := muxFor(&fixed{Backend: node, h: c.h}, nil)
			code, rep := probe(t, mux, "/livez")
			if code != c.live || rep.Status != c.liveSt || rep.Probe != "liveness" || rep.Overall != c.h.Status {
				t.Errorf("/livez %d %+v; want %d %s", code, rep, c.live, c.liveSt)
			}
			code, rep = probe(t, mux, "/readyz")
			if code != c.ready || rep.Status != c.readySt || rep.Probe != "readiness" || rep.Overall != c.h.Status {
				t.Errorf("/readyz %d %+v; want %d %s", code, rep, c.ready, c.readySt)
			}
			if c.h.Status != coord.Healthy && rep.Error != c.h.Error {
				t.Errorf("/readyz error %q; want exactly %q", rep.Error, c.h.Error)
			}
			if rep.Redis.State != c.h.Connection || rep.Cache.Initialized != (c.h.Subscriber == coord.Connected) {
				t.Errorf("/readyz parts %+v %+v; want the connection states", rep.Redis, rep.Cache)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			if rec.Code != c.hz || strings.Contains(rec.Body.String(), `"probe"`) {
				t.Errorf("/healthz %d %s; want %d and the Node document unchanged", rec.Code, rec.Body.String(), c.hz)
			}
		})
	}
}

func TestProbesClosedBackend(t *testing.T) {
	node := memory.NewHub(nil).New(nil)
	mux := muxFor(node, nil)
	if code, rep := probe(t, mux, "/livez"); code != 200 || rep.Status != "ok" {
		t.Errorf("/livez on an open backend: %d %+v", code, rep)
	}
	if err := node.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/livez", "/readyz"} {
		if code, rep := probe(t, mux, p); code != 503 || rep.Status != "fail" || rep.Error == "" {
			t.Errorf("%s on a closed backend: %d %+v; want 503 with the reason", p, code, rep)
		}
	}
}

// wedged is a backend whose Health never returns until released.
type wedged struct {
	coord.Backend
	release chan struct{}
}

func (w *wedged) Health(context.Context) coord.Health {
	<-w.release
	return coord.Health{Status: coord.Healthy}
}

func TestLivenessWedgedBackend(t *testing.T) {
	node := memory.NewHub(nil).New(nil)
	defer node.Close(context.Background())
	w := &wedged{Backend: node, release: make(chan struct{})}
	defer close(w.release)
	mux := muxFor(w, &health.Options{Timeout: 50 * time.Millisecond})
	start := time.Now()
	code, rep := probe(t, mux, "/livez")
	if code != 503 || rep.Status != "fail" || !strings.Contains(rep.Error, "did not return") {
		t.Errorf("/livez on a wedged backend: %d %+v; want 503 saying Health did not return", code, rep)
	}
	// Timeout + WedgeGrace is 1.05s; 10s tells a probe that waits
	// forever from a slow machine.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("/livez took %v on a wedged backend", d)
	}
}

func TestProbesMethods(t *testing.T) {
	node := memory.NewHub(nil).New(nil)
	defer node.Close(context.Background())
	for _, h := range []http.Handler{health.Liveness(node, nil), health.Readiness(node, nil)} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") == "" {
			t.Errorf("POST: %d, want 405 with Allow", rec.Code)
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/", nil))
		if rec.Code != 200 || rec.Body.Len() != 0 {
			t.Errorf("HEAD: %d with %d bytes, want 200 and no body", rec.Code, rec.Body.Len())
		}
	}
}

// TestProbesRedisDown runs the probes on a Redis backend opened as a
// service opens it, through a Redis outage: liveness stays 200 on every
// instance (a load balancer keeps the fleet), readiness is 503 with the
// reason said once, and 200 again once Redis is back; after Close,
// liveness is 503.
func TestProbesRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	b, err := backend.Open(t.Context(), backend.Config{URL: srv.URL() + "/0?max_retries=-1", Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	mux := muxFor(b, &health.Options{Timeout: time.Second})
	if code, _ := probe(t, mux, "/readyz"); code != 200 {
		t.Fatalf("/readyz with Redis up: %d", code)
	}
	srv.Kill(t)
	code, rep := probe(t, mux, "/livez")
	if code != 200 || rep.Status != "ok" || rep.Overall != coord.Unhealthy {
		t.Errorf("/livez with Redis down: %d %+v; want 200, overall unhealthy", code, rep)
	}
	code, rep = probe(t, mux, "/readyz")
	if code != 503 || rep.Status != "fail" || rep.Redis.Connected {
		t.Errorf("/readyz with Redis down: %d %+v; want 503", code, rep)
	}
	if n := strings.Count(rep.Error, "backend unavailable"); n != 1 {
		t.Errorf("error %q says \"backend unavailable\" %d times; want once", rep.Error, n)
	}
	srv.Restart(t)
	coordtest.Eventually(t, 10*time.Second, func() bool { c, _ := probe(t, mux, "/readyz"); return c == 200 }, "/readyz 200 once Redis is back")
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code, rep := probe(t, mux, "/livez"); code != 503 || rep.Status != "fail" {
		t.Errorf("/livez after Close: %d %+v; want 503", code, rep)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
