// Package health serves a coord backend's [coord.Health] over HTTP, as
// three handlers with the Kubernetes probes' meanings (docs/LOGGING.md,
// "Health endpoints"):
//
//   - [Liveness] (/livez): the process is working. 200 unless the backend
//     is closed or wedged (its Health does not return); never 503 just
//     because Redis is down. This is the probe for load balancers and for
//     Kubernetes liveness and readiness probes: Redis is shared, so when
//     it is down every instance would fail a check that depends on it at
//     the same moment, and the load balancer would drop the whole fleet.
//   - [Readiness] (/readyz): the backend works. 503 while it is unhealthy
//     (Redis unreachable, backend closed); 200 when healthy or degraded:
//     degraded counts as ready, the instance works, perhaps alone or
//     slowly. For a start-up gate (a Kubernetes startupProbe) and for
//     monitoring.
//   - [Handler] (/healthz): the Node fleet's health document, with the
//     status codes of readiness (unchanged: 200 healthy or degraded, 503
//     unhealthy). Kept for the Node fleet and existing dashboards; do not
//     point a load balancer at it, for the reason above.
//
// [Register] mounts the three on a ServeMux.
//
// The /healthz document is the Node fleet's (docs/WIRE.md):
//
//	{
//	  "redis":    {"connected": true, "state": "connected", "latency": 2},
//	  "cache":    {"initialized": true, "messageCount": 1234},
//	  "sessions": {"count": 567},
//	  "overall":  "healthy"
//	}
//
// latency is the PING round trip in milliseconds (fractional; 0 for the
// memory backend). cache.initialized reports whether the invalidation
// subscriber is connected; sessions.count is null when the backend could
// not count. Two fields are added to the Node document: "backend"
// ("redis" or "memory") and, when overall is not healthy, "error" with the
// reason. Consumers of the Node document ignore them. /livez and /readyz
// serve the same document with two more fields first: "status" ("ok" or
// "fail", the probe's verdict) and "probe" ("liveness" or "readiness");
// see [ProbeReport].
package health

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"time"

	"github.com/cgn-bot/coord"
)

// DefaultTimeout bounds one Health call when [Options].Timeout is zero.
const DefaultTimeout = 2 * time.Second

// Options configure [Handler]. A nil *Options means the defaults.
type Options struct {
	// Timeout bounds the backend's Health call (a PING and a session
	// count on Redis). Default: [DefaultTimeout].
	Timeout time.Duration
}

// Report is the JSON document the handler serves.
type Report struct {
	// Redis describes the backend's command connection.
	Redis RedisReport `json:"redis"`
	// Cache describes the invalidation subscriber.
	Cache CacheReport `json:"cache"`
	// Sessions counts the live sessions.
	Sessions SessionsReport `json:"sessions"`
	// Overall is "healthy", "degraded" or "unhealthy".
	Overall coord.HealthStatus `json:"overall"`
	// Backend names the backend kind: "redis" or "memory".
	Backend string `json:"backend,omitempty"`
	// Error gives the reason of a status other than healthy.
	Error string `json:"error,omitempty"`
}

// RedisReport is the "redis" object of a [Report].
type RedisReport struct {
	// Connected reports whether the command connection is connected.
	Connected bool `json:"connected"`
	// State is "connected", "reconnecting" or "disconnected".
	State coord.ConnState `json:"state"`
	// Latency is the PING round trip in milliseconds.
	Latency float64 `json:"latency"`
}

// CacheReport is the "cache" object of a [Report].
type CacheReport struct {
	// Initialized reports whether the subscriber connection that carries
	// invalidations and events is connected.
	Initialized bool `json:"initialized"`
	// MessageCount counts the invalidations and events received.
	MessageCount uint64 `json:"messageCount"`
}

// SessionsReport is the "sessions" object of a [Report].
type SessionsReport struct {
	// Count is the number of live sessions; nil when unknown.
	Count *int64 `json:"count"`
}

// NewReport converts a [coord.Health] to the health document.
func NewReport(h coord.Health) Report {
	r := Report{
		Redis: RedisReport{
			Connected: h.Connection == coord.Connected,
			State:     h.Connection,
			Latency:   math.Round(float64(h.Latency.Microseconds())) / 1000,
		},
		Cache: CacheReport{
			Initialized:  h.Subscriber == coord.Connected,
			MessageCount: h.MessagesReceived,
		},
		Overall: h.Status,
		Backend: h.Backend,
	}
	if r.Redis.State == "" {
		r.Redis.State = coord.Disconnected
	}
	if r.Overall == "" {
		r.Overall = coord.Unhealthy
	}
	if h.Sessions >= 0 {
		n := h.Sessions
		r.Sessions.Count = &n
	}
	if r.Overall != coord.Healthy {
		r.Error = h.Error
	}
	return r
}

// StatusCode returns the HTTP status for a health status: 200 for
// healthy and degraded, 503 otherwise.
func StatusCode(s coord.HealthStatus) int {
	if s == coord.Healthy || s == coord.Degraded {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

// Handler returns the /healthz handler: it answers GET and HEAD with b's
// health as a [Report] in JSON, 200 when healthy or degraded, 503 when
// unhealthy (the status codes of [Readiness]); other methods get 405. Each request calls b.Health once,
// bounded by the request's context and [Options].Timeout. The handler is
// safe for concurrent use by multiple goroutines.
func Handler(b coord.Backend, opts *Options) http.Handler {
	timeout := DefaultTimeout
	if opts != nil && opts.Timeout > 0 {
		timeout = opts.Timeout
	}
	return &handler{b: b, timeout: timeout}
}

type handler struct {
	b       coord.Backend
	timeout time.Duration
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	rep := NewReport(h.b.Health(ctx))
	body, err := json.Marshal(rep)
	if err != nil {
		http.Error(w, "health: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(StatusCode(rep.Overall))
	if r.Method == http.MethodGet {
		_, _ = w.Write(append(body, '\n'))
	}
}
