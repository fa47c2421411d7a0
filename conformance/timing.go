package conformance

import "time"

// timing is the suite's one table of durations. Every TTL a case asks
// for and every bound it checks derives from it, so that a backend whose
// leases are coarse (a granularity of whole seconds) runs the same cases
// with longer leases, and so that no case tunes a bare number of its own.
//
// Two kinds of entries:
//   - lease lengths, and the slack on an expiry, scale with the backend's
//     granularity: each is at least a whole number of ticks, so a case
//     that lets a lease expire waits for lease-sized times;
//   - bounds that tell a broken mechanism from a slow one (wake, cancel,
//     delivery) are fixed: they compare a notification with a retry delay
//     set twenty times longer, or the end of a wait with a retry delay
//     set four times longer, so a loaded 2-core machine still meets them
//     while a mechanism that polls or ignores ctx cannot.
//
// Cases read the table from the harness ([timingOf]) at their start.
type timing struct {
	// tick is the backend's lease granularity (1ms when undeclared).
	tick time.Duration

	// short is a lease a case lets expire and then waits out.
	short time.Duration
	// lease is a lease a case lets expire, or loses, and whose end it
	// times: an acquire stalled by a loaded machine still returns it with
	// time left.
	lease time.Duration
	// renewed is a lease a case auto-renews and expects to survive: the
	// renewal at a third of it survives a stall of two thirds of it (at
	// 1ms granularity, a 1.3s stall: 1s leases were lost at a load
	// average of 15 on 2 cores).
	renewed time.Duration
	// long is a lease that outlives its case and whose TTL the case
	// reads; Extend to it is told apart from held.
	long time.Duration
	// held is a lease that outlives any case.
	held time.Duration
	// drift is how far a TTL read may have run down (or been rounded to
	// the granularity) between the call that set it and the read, and how
	// far a time the backend stamps may be from the test's reading taken
	// around the call.
	drift time.Duration
	// expiry is how long past a lease's end its loss may take to be seen
	// (Done closed, the resource free for another instance, a waiter
	// holding it).
	expiry time.Duration

	// settle is how long a case lets a waiter reach its wait before it
	// acts on the resource, or lets a call show it does not return.
	settle time.Duration
	// deadline is a ctx deadline a case sets on a call that must honour
	// it.
	deadline time.Duration
	// retry is the retry delay of a waiter that must be woken by
	// notification, or whose wait must end with its ctx: a poller, or a
	// wait that ignores ctx, would take this long.
	retry time.Duration
	// wake bounds a notified waiter's wake-up in a serial case (retry/20).
	wake time.Duration
	// cancel bounds the end of a wait after its ctx ends, in a serial
	// case (retry/4).
	cancel time.Duration
	// prompt bounds what needs no timer, in a case that runs in parallel
	// with others: a try-once, Done after Release, a woken waiter, Stats
	// after a delivery (retry/2, so a poller still misses it).
	prompt time.Duration
	// poll is the retry delay of a waiter a case lets poll (for an
	// expiry, which nothing notifies), and of retries a case counts.
	poll time.Duration
	// critical is how long a holder stays inside its critical section in
	// the mutual exclusion case.
	critical time.Duration
	// work is how long a handler a case blocks still works after it is
	// let go.
	work time.Duration

	// delivery bounds a publish-to-handler delivery.
	delivery time.Duration
	// resend is how long a case that resends a marker (delivery is at
	// most once) waits for it before it sends it again.
	resend time.Duration
	// connect bounds a fresh instance's report of Healthy.
	connect time.Duration
	// closing bounds a Close once nothing blocks it, and the service of a
	// waiter after its holder's Close.
	closing time.Duration
	// ended bounds a subscription's end after its ctx ends.
	ended time.Duration
	// reconnect bounds a subscriber's return after its connection is cut
	// (delivery resumes, the purge arrives).
	reconnect time.Duration
	// restart bounds a backend's return after its server restarts.
	restart time.Duration
	// guard turns a hang into a failure where the length of a step is not
	// what the case checks.
	guard time.Duration
	// purgeEvery is the contract's rate limit of PurgeAll "malformed":
	// one a second (docs/WIRE.md), a rule of the backend, not a bound.
	purgeEvery time.Duration
	// clock is how far a timestamp stamped by the sender's clock may be
	// from the receiver's now: a sanity check that the field is a time of
	// about now, not a measure of the backend.
	clock time.Duration

	// idle is a session idle TTL a case keeps alive by touching it.
	idle time.Duration
	// stamp is how far apart two times the backend derives from one
	// clock reading may be (ExpiresAt and LastAccessedAt plus the idle
	// TTL; a listed CreatedAt and the one Create returned).
	stamp time.Duration
	// apart is how long a case waits so that two stamps differ (over
	// twice stamp, so a stamp a step away is told from the right one).
	apart time.Duration
	// early is how long before its stated end a session may be gone: the
	// backend's clock and the test's differ by that much.
	early time.Duration
	// gone is how long past its stated end a session may still be found.
	gone time.Duration
	// lists bounds how soon after a session's end Count, ByUser and Stats
	// leave it out: sooner than any periodic sweep.
	lists time.Duration
}

// Polling cadences of the suite's own waits (not bounds): [eventually]
// checks its condition every pollEvery; [retrying], whose condition
// publishes, every retryEvery.
const (
	pollEvery  = 2 * time.Millisecond
	retryEvery = 50 * time.Millisecond
)

// timingOf returns the table for h's declared lease granularity.
func timingOf(h Harness) timing { return newTiming(h.Capabilities().LeaseGranularity) }

// newTiming returns the table for a lease granularity; zero or less means
// 1ms.
func newTiming(granularity time.Duration) timing {
	tick := granularity
	if tick <= 0 {
		tick = time.Millisecond
	}
	// scaled returns base, or n ticks when that is longer.
	scaled := func(base time.Duration, n int) time.Duration {
		return max(base, time.Duration(n)*tick)
	}
	const retry = 2 * time.Second
	return timing{
		tick: tick,

		short:   scaled(150*time.Millisecond, 2),
		lease:   scaled(400*time.Millisecond, 2),
		renewed: scaled(2*time.Second, 3),
		long:    scaled(5*time.Second, 5),
		held:    scaled(30*time.Second, 30),
		drift:   scaled(2*time.Second, 2),
		expiry:  scaled(1850*time.Millisecond, 2),

		settle:   scaled(150*time.Millisecond, 1),
		deadline: 300 * time.Millisecond,
		retry:    retry,
		wake:     retry / 20,
		cancel:   retry / 4,
		prompt:   retry / 2,
		poll:     50 * time.Millisecond,
		critical: 100 * time.Microsecond,
		work:     20 * time.Millisecond,

		delivery:   3 * time.Second,
		resend:     200 * time.Millisecond,
		connect:    3 * time.Second,
		closing:    5 * time.Second,
		ended:      2 * time.Second,
		reconnect:  5 * time.Second,
		restart:    10 * time.Second,
		guard:      20 * time.Second,
		purgeEvery: time.Second,
		clock:      10 * time.Second,

		idle:  scaled(600*time.Millisecond, 2),
		stamp: scaled(5*time.Millisecond, 1),
		apart: scaled(20*time.Millisecond, 3),
		early: scaled(50*time.Millisecond, 1),
		gone:  scaled(time.Second, 2),
		lists: scaled(250*time.Millisecond, 1),
	}
}
