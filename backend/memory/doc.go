// Package memory is the in-process coord backend: for a service that runs
// as a single instance, and for tests, where several instances share one
// [Hub] as several processes share one Redis server.
//
//	hub := memory.NewHub(nil)
//	a := hub.NewNode(nil) // one instance
//	b := hub.NewNode(nil) // another; it sees a's locks, sessions and messages
//	defer a.Close(context.Background())
//	defer b.Close(context.Background())
//
// Each [Node] implements [coord.Backend] with the semantics of package
// coord:
//
//   - Leases: fencing tokens strictly increase per resource, for ever
//     (the counter survives release, expiry and ForceRelease). A release
//     hands the lease at once to the longest waiting Acquire of any node,
//     so waiters are served first come, first served and a holder that
//     releases and acquires again queues behind them. Leases expire by
//     time; Done is closed at the deadline by the node's timer goroutine,
//     which also renews leases acquired with [coord.WithAutoRenew] every
//     TTL/3. A node runs that one goroutine whatever the number of leases.
//     Fences come from one counter for the whole hub, and a resource's
//     state is dropped once it has neither holder nor waiters, so the
//     hub's memory does not grow with the number of names ever locked.
//   - Sessions are keyed by their handle (a SHA-256 of the token), never
//     by the token, with a per-user index and an expiry heap, so Count,
//     ByUser and Stats are right the moment a session expires. Data is
//     copied in and out.
//   - Invalidations and events fan out to every other node of the hub
//     (and to the sender's own subscriptions only with
//     [coord.IncludeOwn]). Each subscription has a bounded queue and its
//     own goroutine, so a slow handler delays no other subscriber; the
//     node's queues share a byte budget ([NodeOptions].QueueBytes). An
//     overflow is counted and, for an invalidation subscription, followed
//     by a [coord.PurgeAll] with Reason "overflow" behind what is queued;
//     a malformed invalidation from [Hub.PublishRaw] by one with Reason
//     "malformed" (at most one per second).
//
// Everything in the package is safe for concurrent use by multiple
// goroutines. There is no global state: two hubs share nothing.
//
// # Fault hooks
//
// [Node.CutSubscription] simulates a lost subscriber connection: what is
// published while it is cut never reaches the node, subscribers made with
// [coord.NotifyGaps] get a [coord.GapStart] at once, and after
// [NodeOptions].ReconnectDelay every invalidation subscriber of the node
// gets a PurgeAll with Reason "reconnect". [Hub.PublishRaw] injects a
// message in the Redis backend's wire format, as another program would.
//
// # As
//
// [Node.As] fills a **Hub or a **Node, so [coord.As] finds them through
// decorators.
//
// # Errors
//
// Bad input is refused with an error wrapping [coord.ErrInvalid] before
// anything changes; calls on a closed Node return [coord.ErrClosed]. The
// backend never returns [coord.ErrUnavailable].
package memory
