// Package redis is the Redis backend of coord, on go-redis v9
// (github.com/redis/go-redis/v9). It works with any
// goredis.UniversalClient: a single node, Sentinel (a failover client) or
// Cluster. Callers import it as coordredis:
//
//	client, err := coordredis.NewClient("redis://localhost:6379/0")
//	...
//	if err := coordredis.Connect(ctx, client); err != nil { ... }
//	b, err := coordredis.New(client, nil)
//	...
//	defer client.Close()
//	defer b.Close(ctx)
//
// A [Backend] never closes the client it was given. Its instance shares
// locks, sessions, invalidations and events with every other Backend (Go
// or the Node fleet it replaces) that uses the same server and prefix.
//
// # URLs
//
// [ParseURL] and [NewClient] take redis://[user[:password]@]host[:port][/db]
// and rediss:// (TLS, with the host as server name), with go-redis's query
// options (dial_timeout, read_timeout, pool_size, protocol, ...) and
// tls_ca_file (a PEM file of the CAs to trust); an unknown option is an
// error wrapping [coord.ErrInvalid]. [FromEnv] reads REDIS_URL, else
// REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_DB and REDIS_TLS, plus
// REDIS_TLS_CA_FILE, and returns [ErrNotConfigured] when neither REDIS_URL
// nor REDIS_HOST is set.
// [Connect] waits for the server at start-up: 10 tries with exponential
// backoff up to 3s apart, bounded by ctx; refused credentials end it at
// once with [ErrAuth]. No error carries the password.
//
// # As
//
// [Backend.As], and the As of its Locker, Sessions, Invalidator and
// Events, fill a *goredis.UniversalClient with the client the Backend was
// made with (and a **Backend with the Backend), so code holding a
// coord.Backend (possibly decorated by middleware, see coord.As) can reach
// Redis directly:
//
//	var c goredis.UniversalClient
//	if coord.As(backend, &c) { ... }
//
// # Errors
//
// Methods return the coord sentinels wrapped with %w: [coord.ErrInvalid]
// for bad input (checked before any Redis call, so a malformed session
// token never reaches Redis) and for data read from Redis that fails
// validation (a foreign or older writer); [coord.ErrNotFound],
// [coord.ErrNotAcquired], [coord.ErrNotHeld] and [coord.ErrExpired] as
// the interfaces document; [coord.ErrClosed] after Close; and
// [coord.ErrUnavailable] when Redis cannot be reached or answers with an
// error. A wait ended by its context returns
// errors.Join(coord.ErrNotAcquired, ctx.Err()).
//
// # Connection state
//
// [Backend.State] and [Backend.SubscriberState] report connected,
// reconnecting or disconnected, and [Options].OnStateChange is called on
// every change (for the redis_connection_state gauge). Health pings the
// server: unhealthy when the PING fails, degraded while the server refuses
// writes for lack of memory (with its refusal in Error), while the
// subscriber connection reconnects, or when the PING is slow.
//
// # Key layout
//
// Every key and channel starts with the prefix P (default "cgn:"; it may
// not contain braces). User-supplied names inside keys are escaped
// (percent-encoding of '{', '}', '%', glob metacharacters, space and
// control bytes), so no name can change a hash tag or reach another key or
// channel.
//
//	P + "cache:invalidate"              channel: key invalidations (Node format)
//	P + "cache:invalidate:pattern"      channel: glob invalidations (Node format)
//	P + "shard:event"                   channel: events, every topic (Node format)
//	P + "lock:{R}"                      string: the lease on resource R (token, PX TTL)
//	P + "lock:{R}:fence"                string: R's last fence, expires 10min after the clock passes it
//	P + "lock:{R}:q"                    zset: R's waiting instances, arrival + ID -> place expires at (ms)
//	P + "lock:{R}:wake"                 channel: R's releases wake waiters here
//	P + "rl:{K}"                        string: K's GCRA rate limit TAT (µs of TIME), PX until reached
//	P + "rl:{K}:w"                      zset: K's sliding window rate limit, one member per event
//	P + "rw:{R}:w" / ":r" / ":q"        string: write lease; zsets: read leases, writer intents -> expiry (server ms)
//	P + "rw:{R}:fence" / ":wake"        R's fence (readers and writers) and wake channel ([RWLocker])
//	P + "sem:{R}" / ":fence" / ":wake"  zset: permit -> expiry (server ms); fence; wake channel ([Semaphores])
//	P + "elect:{E}" / ":fence"          hash: {v: leadership value, t: term}; the terms' counter ([Elector])
//	P + "elect:{E}:changes"             channel: leaderships taken and ended
//	P + "oom-probe"                     never written: Health's SET XX probe for OOM
//	P + "{s}:s:" + handle               hash: one session (see [Sessions])
//	P + "{s}:exp"                       zset: user NUL handle -> expires at (ms)
//	P + "{s}:byuser"                    zset: user NUL handle, by member (ByUser)
//	P + "{s}:created"                   zset: user NUL handle -> created at (ms)
//	P + "{s}:users"                     hash: user -> number of indexed sessions
//	P + "job:{J}"                       hash: job J's record (see [Jobs]), expires with its period
//
// The invalidation message is {"instanceId","cacheKey","metadata",
// "timestamp"} and the event message {"instanceId","event","payload",
// "timestamp"}, timestamps in Unix milliseconds (docs/WIRE.md gives
// every field and what is accepted and refused); malformed messages are counted (Stats().Malformed) and
// dropped.
//
// Every multi-key script keeps its keys in one hash slot: a lease, its
// fence and its wake channel in the slot of "{R}", and every session key
// in the slot of "{s}". In Redis Cluster that puts all sessions on one
// shard: session traffic does not spread over the cluster (locks do).
// That keeps Count one ZCOUNT and Rotate, DeleteByUser and the indexes
// atomic; a deployment whose sessions outgrow one shard would need
// bucketed tags. Invalidations and events use classic PUBLISH/SUBSCRIBE,
// which reaches every node of a Cluster (sharded pub/sub has no
// patterns).
//
// A fence is the greater of R's last fence + 1 and the server clock in
// microseconds (TIME, inside the script), so fences keep increasing when
// the server loses recent writes (a restart from an older snapshot, a
// failover to a replica that lagged) as long as the server clock does not
// run backwards; the counter covers a clock stepping back while it lives.
// The Node fleet does not use the fence key.
//
// # Leases
//
// Acquire is one script (SET NX PX, then a new fence); Release is one
// script (compare-and-delete, then, when instances are queued, a
// reservation for the oldest and a PUBLISH on the wake channel addressed
// to it), or one that hands the lease to a waiter of the same instance. Waiting, the
// local handoff and the reservation for waiters are described once, at
// [Locker]. A lease's local deadline is its TTL from the moment before
// the acquire was sent, on the monotonic clock; Done closes when it
// passes without a renewal, when a renewal, Extend or TTL finds the lease
// gone, or on Release, even a Release that failed: the lease is given up
// and released in the background. One watchdog goroutine per Backend
// renews every auto-renewed lease at a third of its TTL; another releases
// "orphans": leases whose acquire reply was lost (a timeout while the
// server stalled may still run the script later) or whose Release failed.
// With [Options].LockReplicas, every acquire (an exclusive lease, a read or
// write lease, a permit, a leadership) also WAITs for replicas on the same
// connection and gives up a lease they did not acknowledge; no lease is
// then handed to a local waiter inside Release.
//
// Every lease value is "<secret>.<instance ID>" (a leadership's adds
// "\n<identity>"): 128 random bits, then the holder's instance ID, which
// the admin reads ([Backend.Leases], [Backend.RW], [Backend.Semaphore])
// and [Elector.Leader] show; the secret part is never shown. Read leases,
// write leases, permits and leaderships run on the same engine, with
// scripts of their own (see [RWLocker], [Semaphores], [Elector]).
//
// # Shared round trips
//
// The lease scripts and the hot session commands of concurrent callers
// share pipelines (group commit): a call that finds fewer than four
// batches in flight is sent at once, with the calls queued meanwhile; a
// call that finds four queues, and the first batch back sends the queue.
// A caller alone sends exactly its own command; many callers save most of
// a write and a read system call per command on both sides. A call still
// queued when its context ends returns at once; a batch already sent runs
// to completion, bounded by the client's timeouts.
//
// # Subscriber connection
//
// Each Backend has one subscriber connection (a go-redis PubSub read with
// its raw Receive loop, without a read deadline; a health goroutine pings
// it every [Options].HealthInterval and, when the PONG does not come within
// [Options].PingTimeout, announces a gap ([coord.GapStart]) and replaces
// it), shared by invalidation, events and lock waiters. Messages go to
// bounded per-subscription queues (never go-redis's Channel(), which drops
// a message blocked for 60s), within the Backend's byte budget
// ([Options].QueueBytes); overflow is counted and, for invalidation,
// turned into a PurgeAll with Reason "overflow". A malformed invalidation
// is dropped, counted, and turned into a PurgeAll with Reason "malformed"
// (at most one per second).
// Each resubscription after a reconnect is seen in the confirmations it
// brings; every invalidation subscriber then gets a PurgeAll with Reason
// "reconnect", and lock waiters retry at once.
package redis
