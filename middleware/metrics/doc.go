// Package metrics decorates coord backends with Prometheus metrics.
//
// [New] registers the metrics with a [prometheus.Registerer] and returns a
// [Middleware]; its methods decorate a whole backend or one part of it:
//
//	m, err := metrics.New(prometheus.DefaultRegisterer, &metrics.Options{Namespace: "skynetbot"})
//	if err != nil { ... }
//	b = m.Backend(b)   // or m.Locker(l), m.Sessions(s), m.Invalidator(i), m.Events(e)
//
// # Series
//
// With Namespace "skynetbot" the six series of the Node design have its
// names, types and label names:
// skynetbot_distributed_cache_messages_received_total{channel},
// skynetbot_distributed_cache_invalidations_sent_total{type},
// skynetbot_distributed_shard_events_sent_total{event},
// skynetbot_redis_connection_state,
// skynetbot_distributed_locks_active and
// skynetbot_distributed_lock_acquisitions_total{resource,status}. The
// other series (latency and errors per operation, lock wait and hold time,
// lost leases, purges, dropped, malformed and panicking deliveries) are
// listed at [New].
//
// # Near caches
//
// [Middleware.Cache] records the Stats of a near cache
// ([github.com/cgn-bot/coord/cache]) under a cache label the program
// chooses: hits, misses, loads, load errors, evictions, expirations,
// purges by reason, gaps, entries and whether it is suspended, read at
// each scrape.
//
// # Cardinality
//
// Every label value comes from a fixed set, except resource and event,
// which name user data: they go through [Options.ResourceLabel] and
// [Options.EventLabel], which map every name to "all" unless set (see
// [Allow] for a bounded mapping). Error messages are never label values.
//
// # Cost
//
// Label children are made once and durations go to fixed-bucket
// histograms of this package (a bucket search and two atomic adds,
// exported as constant histograms at scrape time), so an operation costs
// two monotonic clock reads and one observation; Acquire and Release
// together cost four clock reads, four observations and one allocation
// (the Lock decorator). The connection state, the active leases and the
// Stats counters are read at scrape time and cost operations nothing.
//
// # Connection state
//
// redis_connection_state comes from a method State() coord.ConnState of
// the decorated backend or of what it wraps (found through Unwrap), else
// from its Health.
//
// # As
//
// Decorators forward As and expose Unwrap, so [coord.As] reaches the
// backend's native types through them.
//
// # Errors
//
// Decorators return exactly what the decorated value returns. [New]
// returns registration errors; a metric already registered by another
// Middleware with the same namespace is shared.
package metrics
