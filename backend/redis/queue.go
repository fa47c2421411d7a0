package redis

import (
	"fmt"
	"strings"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/subq"
	"github.com/cgn-bot/coord/internal/wire"
)

// Each subscription is a queue of the subscription engine (internal/subq),
// shared with the memory backend: a bounded queue drained by its own
// goroutine, charged to the Backend's byte budget (Options.QueueBytes),
// where overflow ends in one counted PurgeAll for invalidations and a
// counted drop for events.

// detachAbove is the size of a message past which its decoded key, topic
// and instance ID are copied out of it, so that a queued item does not
// keep the whole message alive; below it they stay views into the
// message, which the item is charged for.
const detachAbove = 4 << 10

// invSize is what a queued invalidation holds, in bytes.
func invSize(v coord.Invalidation) int {
	return len(v.Key) + len(v.Metadata) + len(v.InstanceID) + wire.TraceSize(v.Trace)
}

// evSize is what a queued event holds, in bytes.
func evSize(v coord.Event) int {
	return len(v.Topic) + len(v.Payload) + len(v.InstanceID) + wire.TraceSize(v.Trace)
}

// invControl makes the PurgeAll or GapStart of an invalidation queue.
func invControl(c subq.Control, reason string) coord.Invalidation {
	kind := coord.PurgeAll
	if c == subq.Gap {
		kind = coord.GapStart
	}
	return coord.Invalidation{Kind: kind, Reason: reason, Timestamp: time.Now()}
}

func panicLogger(b *Backend, what string) func(any) {
	return func(r any) {
		b.opts.Logger.Error("coord/redis: "+what+" handler panicked (recovered)", "panic", fmt.Sprint(r))
	}
}

// detachInv copies the strings of inv out of payload, the message they
// were decoded from, when it is large, and returns the bytes the queued
// item holds: with the message, when it stays alive.
func detachInv(inv *coord.Invalidation, payload string) int {
	if len(payload) <= detachAbove {
		return len(payload) + len(inv.Metadata)
	}
	inv.Key, inv.InstanceID = strings.Clone(inv.Key), strings.Clone(inv.InstanceID)
	return invSize(*inv)
}

// detachEv is detachInv for an event.
func detachEv(ev *coord.Event, payload string) int {
	if len(payload) <= detachAbove {
		return len(payload) + len(ev.Payload)
	}
	ev.Topic, ev.InstanceID = strings.Clone(ev.Topic), strings.Clone(ev.InstanceID)
	return evSize(*ev)
}
