// Package middleware holds the decorators that observe a coord backend
// without changing what it does, and the vocabulary they share.
//
// The decorators live in two subpackages, so that a program that only logs
// does not import Prometheus:
//
//   - [github.com/cgn-bot/coord/middleware/metrics] exports Prometheus
//     metrics (the six series of docs/METRICS.md and per-operation
//     latency).
//   - [github.com/cgn-bot/coord/middleware/logging] logs each operation
//     with [log/slog].
//
// Each has a decorator per interface, of the form
// func(next coord.Locker) coord.Locker, and one for a whole
// [github.com/cgn-bot/coord.Backend]. A decorator that is not configured (a nil registerer or
// logger) returns next unchanged.
//
// # Use
//
//	m, err := metrics.New(prometheus.DefaultRegisterer, &metrics.Options{Namespace: "skynetbot"})
//	if err != nil { ... }
//	l := logging.New(slog.Default(), nil)
//	b = m.Backend(l.Backend(b))
//
// Decorators nest: above, the metrics decorator is the outermost, so its
// latencies include the logging decorator's time. Either order gives the
// same observations.
//
// # As
//
// Decorators implement [github.com/cgn-bot/coord.Aser] by forwarding to what they wrap and
// expose it with Unwrap, so [github.com/cgn-bot/coord.As] reaches the backend's native types
// through any number of decorators.
//
// # Errors
//
// Decorators return what the wrapped value returns, unchanged. They
// classify errors with [ErrorKind], a fixed set of names used as the kind
// label of metrics and the outcome of log records.
package middleware
