package redis

import (
	"fmt"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/subq"
)

// Each subscription is a queue of the subscription engine (internal/subq),
// shared with the memory backend: a bounded queue drained by its own
// goroutine, charged to the Backend's byte budget (Options.QueueBytes),
// where overflow ends in one counted PurgeAll for invalidations and a
// counted drop for events.

// invSize is what a queued invalidation holds, in bytes.
func invSize(v coord.Invalidation) int {
	return len(v.Key) + len(v.Metadata) + len(v.InstanceID)
}

// evSize is what a queued event holds, in bytes.
func evSize(v coord.Event) int {
	return len(v.Topic) + len(v.Payload) + len(v.InstanceID)
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
