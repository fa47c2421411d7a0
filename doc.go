// Package coord lets a service run as many instances and still behave as
// one: leases on named resources with fencing tokens ([Locker]), sessions
// every instance can read ([SessionStore]), cache invalidation that reaches
// every instance ([Invalidator]) and events between instances
// ([EventBus]), bundled with health by [Backend].
//
// This package holds the interfaces, value types, options, sentinel errors
// and the validation every backend shares; it has no backend code. The
// backends live in backend/redis (go-redis v9: single node, Cluster,
// Sentinel) and backend/memory (one process; also the backend for tests).
// Package conformance is the test suite every backend passes.
//
// # Guarantees
//
// Leases exclude: no two holders of one resource at once while leases are
// honoured, and [Lock.Fence] strictly increases per resource. A release
// wakes a waiter at once. Sessions merge field by field, so two instances
// updating different fields lose neither. Invalidations and events reach
// every other instance in publish order from one publisher, never the
// sender unless asked, and after any gap in delivery every invalidation
// subscriber is told to purge all.
//
// # Errors
//
// Every error a backend returns wraps one of the sentinels ([ErrNotAcquired],
// [ErrNotHeld], [ErrExpired], [ErrLeaseLost], [ErrNotFound], [ErrClosed],
// [ErrInvalid], [ErrUnavailable]); test them with [errors.Is].
//
// # Bad input
//
// Names (resources, keys, topics, user IDs) are 1 to [MaxNameLen] bytes of
// UTF-8 without control characters; payloads are JSON of at most
// 1 MiB unless a backend sets another limit; TTLs are
// at least a millisecond. Anything else is refused with an error wrapping
// [ErrInvalid] before it reaches the store.
//
// # As
//
// Backends expose their native types through [As]: the Redis backend
// fills a *goredis.UniversalClient.
package coord
