// Package driver holds what the authors of coord backends and decorators
// need and users of coord do not: the validation every backend applies to
// its input, the encoding of payloads and session data, the resolvers of
// per-call options, the payload limit, and the interface through which a
// backend reports the state of its connection.
//
// Most code should use the [coord] package and open a backend with
// [github.com/cgn-bot/coord/backend/memory],
// [github.com/cgn-bot/coord/backend/redis] or
// [github.com/cgn-bot/coord/backend].
//
// # Errors
//
// Every error returned here wraps [coord.ErrInvalid]: a backend returns
// it as is, before it changes anything stored.
//
// The functions in this package are safe for concurrent use by multiple
// goroutines and keep no state.
package driver

import "github.com/cgn-bot/coord"

// StateReporter is implemented by a backend that keeps a connection to a
// server, and by the decorators and wrappers that stand in for one.
// State returns the state of the command connection now, without I/O;
// the metrics middleware exports it as redis_connection_state and health
// checks read it. A backend without a connection (memory) need not
// implement it: callers fall back to [coord.Health.Connection].
//
// State must be safe for concurrent use by multiple goroutines and must
// not block.
type StateReporter interface {
	State() coord.ConnState
}
