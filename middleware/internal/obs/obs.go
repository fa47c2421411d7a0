// Package obs is the vocabulary the metrics and logging decorators share:
// the fixed sets of operation names and error kinds.
package obs

import (
	"context"
	"errors"
	"time"

	"github.com/cgn-bot/coord"
)

// Op names one decorated operation.
type Op uint8

// Operations, one per method of the coord interfaces that does work.
const (
	LockAcquire Op = iota
	LockLocked
	LockForceRelease
	LockRelease
	LockExtend
	LockTTL
	SessionCreate
	SessionGet
	SessionTouch
	SessionUpdate
	SessionDelete
	SessionExists
	SessionExtend
	SessionRotate
	SessionByUser
	SessionRevoke
	SessionDeleteByUser
	SessionCount
	SessionStats
	SessionCleanup
	Invalidate
	InvalidatePattern
	InvalidateSubscribe
	EventPublish
	EventSubscribe
	BackendHealth
	BackendClose
	JobDue
	JobComplete
	JobFail
	RateAllow
	RatePeek
	RateReset
	RWRLock
	RWLock
	RWState
	RWForceRelease
	SemAcquire
	SemHolders
	SemForceRelease
	ElectCampaign
	ElectLeader
	ElectObserve
	ElectForceRelease
	StreamAppend
	StreamConsume
	StreamRange
	StreamInfo
	StreamDeadLetters
	StreamTrim
	// NumOps is the number of operations.
	NumOps
)

var opNames = [NumOps]string{
	LockAcquire:         "lock_acquire",
	LockLocked:          "lock_locked",
	LockForceRelease:    "lock_force_release",
	LockRelease:         "lock_release",
	LockExtend:          "lock_extend",
	LockTTL:             "lock_ttl",
	SessionCreate:       "session_create",
	SessionGet:          "session_get",
	SessionTouch:        "session_touch",
	SessionUpdate:       "session_update",
	SessionDelete:       "session_delete",
	SessionExists:       "session_exists",
	SessionExtend:       "session_extend",
	SessionRotate:       "session_rotate",
	SessionByUser:       "session_by_user",
	SessionRevoke:       "session_revoke",
	SessionDeleteByUser: "session_delete_by_user",
	SessionCount:        "session_count",
	SessionStats:        "session_stats",
	SessionCleanup:      "session_cleanup",
	Invalidate:          "invalidate",
	InvalidatePattern:   "invalidate_pattern",
	InvalidateSubscribe: "invalidate_subscribe",
	EventPublish:        "event_publish",
	EventSubscribe:      "event_subscribe",
	BackendHealth:       "health",
	BackendClose:        "close",
	JobDue:              "job_due",
	JobComplete:         "job_complete",
	JobFail:             "job_fail",
	RateAllow:           "rate_allow",
	RatePeek:            "rate_peek",
	RateReset:           "rate_reset",
	RWRLock:             "rwlock_rlock",
	RWLock:              "rwlock_lock",
	RWState:             "rwlock_state",
	RWForceRelease:      "rwlock_force_release",
	SemAcquire:          "semaphore_acquire",
	SemHolders:          "semaphore_holders",
	SemForceRelease:     "semaphore_force_release",
	ElectCampaign:       "election_campaign",
	ElectLeader:         "election_leader",
	ElectObserve:        "election_observe",
	ElectForceRelease:   "election_force_release",
	StreamAppend:        "stream_append",
	StreamConsume:       "stream_consume",
	StreamRange:         "stream_range",
	StreamInfo:          "stream_info",
	StreamDeadLetters:   "stream_dead_letters",
	StreamTrim:          "stream_trim",
}

// String returns the operation's name, such as "lock_acquire".
func (o Op) String() string {
	if o < NumOps {
		return opNames[o]
	}
	return "unknown"
}

// Kind classifies an error.
type Kind uint8

// Error kinds, in the order KindOf tests them.
const (
	OK Kind = iota
	Expired
	NotHeld
	NotAcquired
	LeaseLost
	NotFound
	Closed
	Invalid
	Unavailable
	RateLimited
	Canceled
	DeadlineExceeded
	Other
	// NumKinds is the number of kinds.
	NumKinds
)

var kindNames = [NumKinds]string{
	OK:               "ok",
	Expired:          "expired",
	NotHeld:          "not_held",
	NotAcquired:      "not_acquired",
	LeaseLost:        "lease_lost",
	NotFound:         "not_found",
	Closed:           "closed",
	Invalid:          "invalid",
	Unavailable:      "unavailable",
	RateLimited:      "rate_limited",
	Canceled:         "canceled",
	DeadlineExceeded: "deadline_exceeded",
	Other:            "other",
}

// String returns the kind's name, such as "not_found".
func (k Kind) String() string {
	if k < NumKinds {
		return kindNames[k]
	}
	return "other"
}

// sentinels maps the kinds after OK, in order, to the error each stands
// for. ErrExpired comes before ErrNotHeld, which it wraps, and
// ErrNotAcquired before the context errors it may be joined with.
var sentinels = [...]struct {
	kind Kind
	err  error
}{
	{Expired, coord.ErrExpired},
	{NotHeld, coord.ErrNotHeld},
	{NotAcquired, coord.ErrNotAcquired},
	{LeaseLost, coord.ErrLeaseLost},
	{NotFound, coord.ErrNotFound},
	{Closed, coord.ErrClosed},
	{Invalid, coord.ErrInvalid},
	{Unavailable, coord.ErrUnavailable},
	{RateLimited, coord.ErrRateLimited},
	{Canceled, context.Canceled},
	{DeadlineExceeded, context.DeadlineExceeded},
}

// KindOf returns the kind of err: OK for nil, the first sentinel err wraps,
// or Other.
func KindOf(err error) Kind {
	if err == nil {
		return OK
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s.kind
		}
	}
	return Other
}

// IsLeaseLost reports whether err from Release, Extend or TTL means the
// lease is no longer this holder's (it wraps [coord.ErrNotHeld], which
// [coord.ErrExpired] wraps too).
func IsLeaseLost(err error) bool {
	return err != nil && errors.Is(err, coord.ErrNotHeld)
}

// Clock reads a monotonic clock with one clock read per call (time.Now
// reads two clocks). The zero Clock is not usable; see [NewClock].
type Clock struct{ base time.Time }

// NewClock returns a Clock whose readings count from now.
func NewClock() Clock { return Clock{base: time.Now()} }

// Now returns the time since the Clock was made.
func (c Clock) Now() time.Duration { return time.Since(c.base) }

// Expected reports whether k is the kind of an error that is an answer
// in normal running rather than a failure: not acquired, not found, not
// held, expired and canceled (docs/LOGGING.md).
func Expected(k Kind) bool {
	switch k {
	case NotAcquired, NotFound, NotHeld, Expired, Canceled:
		return true
	}
	return false
}
