// Package httprate limits the requests of a net/http server with a
// [coord.RateLimiter], so that every instance of a service behind a load
// balancer counts against one limit:
//
//	mw, err := httprate.New(backend.RateLimiter(), coord.Limit{Name: "api", Rate: 100, Period: time.Minute}, nil)
//	...
//	http.ListenAndServe(addr, mw(mux))
//
// Each request is one event on a key its [KeyFunc] derives (the client IP
// by default; the user, the route, or a mix of them). An allowed request
// goes on with the headers RateLimit-Limit, RateLimit-Remaining,
// RateLimit-Reset and RateLimit-Policy of the IETF draft "RateLimit
// header fields for HTTP" (draft-ietf-httpapi-ratelimit-headers-07); a
// denied one is answered 429 Too Many Requests with Retry-After as well.
// A limiter that cannot decide (its backend unreachable) never lets the
// request through: it is answered 503 Service Unavailable by default (see
// [Options.OnError]).
package httprate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

// KeyFunc returns the rate limit key of a request. An error, or a key that
// is empty or no valid name (see [coord.MaxNameLen]), makes the middleware
// answer with [Options.OnError] (400 by default, as [ErrNoKey]); the
// request is not let through.
type KeyFunc func(r *http.Request) (string, error)

// ErrNoKey is wrapped by the error of a [KeyFunc] that finds no key in a
// request.
var ErrNoKey = errors.New("httprate: no rate limit key in the request")

// ByIP keys requests by the client IP of r.RemoteAddr (the port dropped).
// Behind a proxy, RemoteAddr is the proxy's: use [ByHeader] with the
// header the proxy sets, if it overwrites what clients send.
func ByIP(r *http.Request) (string, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if host == "" {
		return "", fmt.Errorf("%w: no remote address", ErrNoKey)
	}
	return "ip:" + host, nil
}

// ByHeader keys requests by the value of the header name, such as
// "X-Real-IP" set by a trusted proxy (for "X-Forwarded-For", the first
// address). A request without the header has no key.
func ByHeader(name string) KeyFunc {
	return func(r *http.Request) (string, error) {
		v := r.Header.Get(name)
		if i := strings.IndexByte(v, ','); i >= 0 {
			v = v[:i]
		}
		v = strings.TrimSpace(v)
		if v == "" {
			return "", fmt.Errorf("%w: no %s header", ErrNoKey, name)
		}
		return "h:" + v, nil
	}
}

// ByRoute keys requests by method and route: the pattern of the
// [http.ServeMux] route that matched (r.Pattern) when there is one, else
// the URL path.
func ByRoute(r *http.Request) (string, error) {
	if r.Pattern != "" {
		return "route:" + r.Pattern, nil
	}
	return "route:" + r.Method + " " + r.URL.Path, nil
}

// ByUser keys requests by the user user returns (from the request's
// context, say); a request with no user ("") has no key.
func ByUser(user func(r *http.Request) string) KeyFunc {
	return func(r *http.Request) (string, error) {
		u := user(r)
		if u == "" {
			return "", fmt.Errorf("%w: no user", ErrNoKey)
		}
		return "user:" + u, nil
	}
}

// Join keys requests by all of fns together ("per user per route"): the
// keys joined by "|". An error of any of them is the error.
func Join(fns ...KeyFunc) KeyFunc {
	return func(r *http.Request) (string, error) {
		var b strings.Builder
		for i, f := range fns {
			k, err := f(r)
			if err != nil {
				return "", err
			}
			if i > 0 {
				b.WriteByte('|')
			}
			b.WriteString(k)
		}
		return b.String(), nil
	}
}

// Options configure the middleware. A nil *Options, or a zero field,
// means the default.
type Options struct {
	// Key derives a request's key. Default: [ByIP].
	Key KeyFunc
	// Prefix starts every key, so that two middlewares with different
	// limits on one limiter keep apart. Default: Limit.Name and ":".
	Prefix string
	// Cost is how many events a request counts for, 1 to the limit's
	// Size; a cost out of bounds is an error. Default: 1.
	Cost func(r *http.Request) int
	// OnLimited answers a denied request, after the RateLimit-* and
	// Retry-After headers are set. Default: 429 with a short text body.
	OnLimited http.Handler
	// OnError answers a request the limiter could not decide on (err
	// wraps [coord.ErrUnavailable], [coord.ErrInvalid] for a bad key or
	// cost, [ErrNoKey], or ctx's error). It must not let the request
	// through unless failing open is meant (see docs/RATELIMIT.md).
	// Default: 503 with Retry-After: 1; 400 for [ErrNoKey]; 500 for
	// [coord.ErrInvalid].
	OnError func(w http.ResponseWriter, r *http.Request, err error)
	// NoHeaders leaves out the RateLimit-* headers (Retry-After stays).
	NoHeaders bool
}

// New returns middleware that limits requests under limit on rl. The
// error wraps [coord.ErrInvalid] when limit is not valid for one event.
func New(rl coord.RateLimiter, limit coord.Limit, opts *Options) (func(http.Handler) http.Handler, error) {
	if rl == nil {
		return nil, fmt.Errorf("%w: httprate: nil RateLimiter", coord.ErrInvalid)
	}
	if err := limit.Validate(1); err != nil {
		return nil, err
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Key == nil {
		o.Key = ByIP
	}
	if o.Prefix == "" {
		o.Prefix = limit.Label() + ":"
	}
	if o.OnLimited == nil {
		o.OnLimited = http.HandlerFunc(tooMany)
	}
	if o.OnError == nil {
		o.OnError = defaultOnError
	}
	policy := strconv.Itoa(limit.Rate) + ";w=" + strconv.FormatInt(int64(ceilSeconds(limit.Period)), 10)
	if !limit.Window {
		policy += ";burst=" + strconv.Itoa(limit.Size())
	}
	size := strconv.Itoa(limit.Size())
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key, err := o.Key(r)
			if err == nil {
				// A key from the request (a header) that is no valid
				// name is the client's fault, not the server's.
				if key == "" {
					err = fmt.Errorf("%w: empty key", ErrNoKey)
				} else if verr := driver.ValidateName("key", o.Prefix+key); verr != nil {
					err = fmt.Errorf("%w: %w", ErrNoKey, verr)
				}
			}
			if err != nil {
				o.OnError(w, r, err)
				return
			}
			n := 1
			if o.Cost != nil {
				n = o.Cost(r)
			}
			d, err := rl.Allow(r.Context(), o.Prefix+key, limit, n)
			if err != nil {
				o.OnError(w, r, err)
				return
			}
			h := w.Header()
			if !o.NoHeaders {
				h.Set("RateLimit-Limit", size)
				h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
				h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(d.ResetAfter)))
				h.Set("RateLimit-Policy", policy)
			}
			if !d.Allowed {
				h.Set("Retry-After", strconv.Itoa(max(ceilSeconds(d.RetryAfter), 1)))
				o.OnLimited.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

// ceilSeconds returns d in whole seconds, rounded up: a client that waits
// that long is never early.
func ceilSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

func tooMany(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "too many requests", http.StatusTooManyRequests)
}

func defaultOnError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNoKey):
		http.Error(w, "bad request", http.StatusBadRequest)
	case errors.Is(err, coord.ErrInvalid):
		// A key or cost the limit refuses: a bug of the server's, not an outage.
		http.Error(w, "internal server error", http.StatusInternalServerError)
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away: nobody reads the answer.
		w.WriteHeader(http.StatusServiceUnavailable)
	default:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "service unavailable", http.StatusServiceUnavailable)
	}
}
