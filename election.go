package coord

import (
	"context"
	"time"
)

// Elector runs elections: at most one leader per election at a time (as
// long as leases are honoured), each leadership a lease whose fence is its
// term, strictly increasing across leaders, so a deposed leader's writes
// can be fenced. An Elector is safe for concurrent use by multiple
// goroutines.
//
// A backend without elections returns one whose methods fail with
// [ErrUnsupported].
type Elector interface {
	// Campaign waits until this instance leads election, proclaiming
	// identity (a short public value, such as an address; never a secret;
	// it must be valid as a name), or until ctx ends. Campaigners are
	// served as [Locker.Acquire] serves waiters: a resignation hands the
	// leadership to a waiting campaigner at once. The options are those of
	// Acquire (TTL, retries, [WithWait], [WithAutoRenew]). May return
	// [ErrNotAcquired] (joined with ctx.Err() when ctx ended the wait),
	// [ErrInvalid], [ErrClosed] or [ErrUnavailable].
	Campaign(ctx context.Context, election, identity string, opts ...LockOption) (Leadership, error)
	// Leader returns the current leader of election; [ErrNotFound] when
	// there is none.
	Leader(ctx context.Context, election string) (LeaderInfo, error)
	// Observe calls fn with the leader of election now and on every
	// change of leader, including to none. After any gap in delivery it
	// calls fn with the leader read afresh, so fn always ends up with the
	// latest state. fn runs on the subscription's own goroutine.
	Observe(ctx context.Context, election string, fn func(LeaderInfo), opts ...SubscribeOption) (Subscription, error)
	// ForceRelease ends the current leadership of election, whoever holds
	// it, and hands it to the next campaigner. It reports whether there
	// was a leader. It is an administrative tool: the deposed leader
	// learns of it at its next Extend, Release or renewal (its Done
	// closes then), and its successor's term is higher.
	ForceRelease(ctx context.Context, election string) (bool, error)
}

// Leadership is one term of leadership: a [Lock] whose Fence is the term,
// whose Done closes when leadership is lost and whose Release resigns.
type Leadership interface {
	Lock
	// Identity returns the identity this leader proclaimed.
	Identity() string
}

// LeaderInfo describes the leader of an election. Its zero value (an
// empty InstanceID) means there is none.
type LeaderInfo struct {
	// Election is the election's name.
	Election string
	// Identity is what the leader proclaimed in Campaign.
	Identity string
	// InstanceID is the leading instance's ID.
	InstanceID string
	// Term is the leadership's fence.
	Term int64
	// TTL is the time left on the leadership's lease when it was read.
	TTL time.Duration
}
