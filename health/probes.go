package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/cgn-bot/coord"
)

// Paths of the handlers [Register] mounts.
const (
	PathLiveness  = "/livez"
	PathReadiness = "/readyz"
	PathHealth    = "/healthz"
)

// WedgeGrace is how long past its [Options].Timeout a backend's Health may
// take before [Liveness] calls the backend wedged. Health is bounded by
// its ctx on every coord backend, so only a backend that is stuck (a
// deadlock, a goroutine that never returns) goes past it.
const WedgeGrace = time.Second

// Probe verdicts, the "status" field of a [ProbeReport].
const (
	StatusOK   = "ok"
	StatusFail = "fail"
)

// ProbeReport is the JSON document /livez and /readyz serve: the probe's
// verdict, then the /healthz document ([Report]) with the state of each
// part (the command connection, the subscriber connection, the session
// count) and, when not healthy, the reason.
type ProbeReport struct {
	// Status is [StatusOK] (the code is 200) or [StatusFail] (503).
	Status string `json:"status"`
	// Probe is "liveness" or "readiness".
	Probe string `json:"probe"`
	Report
}

// Liveness returns the /livez handler. It answers GET and HEAD with a
// [ProbeReport]: 503 when the backend is closed (its methods return
// [coord.ErrClosed]) or wedged (its Health has not returned
// [WedgeGrace] after [Options].Timeout), 200 otherwise, whatever the
// backend's health: an instance whose Redis is down is alive, and its
// report says "unhealthy" with the reason. Other methods get 405.
//
// A wedged Health is left running: its goroutine ends when Health
// returns. The handler is safe for concurrent use by multiple goroutines.
func Liveness(b coord.Backend, opts *Options) http.Handler {
	return &probe{b: b, timeout: timeoutOf(opts), liveness: true}
}

// Readiness returns the /readyz handler. It answers GET and HEAD with a
// [ProbeReport]: 200 when the backend is healthy or degraded (degraded
// counts as ready: the instance works, perhaps alone or slowly), 503 when
// it is unhealthy (Redis unreachable, the backend closed) or its Health
// did not return in time. Other methods get 405. Every instance of a fleet
// fails it at once while their shared Redis is down: use it to gate
// start-up and for monitoring, and [Liveness] for load balancers. The
// handler is safe for concurrent use by multiple goroutines.
func Readiness(b coord.Backend, opts *Options) http.Handler {
	return &probe{b: b, timeout: timeoutOf(opts)}
}

// Register mounts [Handler] at /healthz, [Liveness] at /livez and
// [Readiness] at /readyz on mux, for GET and HEAD.
func Register(mux *http.ServeMux, b coord.Backend, opts *Options) {
	mux.Handle(PathHealth, Handler(b, opts))
	mux.Handle(PathLiveness, Liveness(b, opts))
	mux.Handle(PathReadiness, Readiness(b, opts))
}

func timeoutOf(opts *Options) time.Duration {
	if opts != nil && opts.Timeout > 0 {
		return opts.Timeout
	}
	return DefaultTimeout
}

type probe struct {
	b        coord.Backend
	timeout  time.Duration
	liveness bool
}

// errWedged is the reason given when Health did not return in time.
var errWedged = errors.New("health: the backend's Health did not return in time")

// check calls Health bounded by the timeout and waits for it at most
// WedgeGrace longer. ok is false when it did not return by then.
func (p *probe) check(ctx context.Context) (h coord.Health, ok bool) {
	hctx, cancel := context.WithTimeout(ctx, p.timeout)
	ch := make(chan coord.Health, 1)
	go func() {
		defer cancel()
		ch <- p.b.Health(hctx)
	}()
	t := time.NewTimer(p.timeout + WedgeGrace)
	defer t.Stop()
	select {
	case h = <-ch:
		return h, true
	case <-t.C:
	case <-ctx.Done():
	}
	cancel()
	return coord.Health{Status: coord.Unhealthy, Sessions: -1, Error: errWedged.Error()}, false
}

// closed reports whether b's methods return coord.ErrClosed. It asks with
// a context that has already ended, so that an open backend answers
// without I/O.
func closed(ctx context.Context, b coord.Backend) bool {
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := b.Locker().Locked(cctx, "coord-livez")
	return errors.Is(err, coord.ErrClosed)
}

func (p *probe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h, answered := p.check(r.Context())
	rep := ProbeReport{Status: StatusOK, Probe: "readiness", Report: NewReport(h)}
	if p.liveness {
		rep.Probe = "liveness"
		// A closed backend reports itself unhealthy and disconnected (a
		// Redis that is down leaves it reconnecting): only then is the
		// backend asked, so a Redis outage costs no extra call.
		if !answered || (h.Status == coord.Unhealthy && h.Connection != coord.Reconnecting && closed(r.Context(), p.b)) {
			rep.Status = StatusFail
		}
	} else if !answered || StatusCode(rep.Overall) != http.StatusOK {
		rep.Status = StatusFail
	}
	body, err := json.Marshal(rep)
	if err != nil {
		http.Error(w, "health: "+err.Error(), http.StatusInternalServerError)
		return
	}
	code := http.StatusOK
	if rep.Status != StatusOK {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method == http.MethodGet {
		_, _ = w.Write(append(body, '\n'))
	}
}
