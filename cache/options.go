package cache

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

// Defaults of [Options].
const (
	// DefaultMaxSize is the entry limit when [Options.MaxSize] is 0.
	DefaultMaxSize = 10_000
	// DefaultMaxTTL is the longest an entry lives when [Options.MaxTTL] is 0.
	DefaultMaxTTL = 5 * time.Minute
)

// Options configure a [Cache]. A nil *Options, like a zero Options,
// means every default.
type Options struct {
	// MaxSize bounds the number of entries. When it is reached, the
	// entries least likely to be used again are evicted (otter's
	// W-TinyLFU policy); the bound may be passed briefly while an eviction
	// runs. It must not be negative. Default: [DefaultMaxSize].
	MaxSize int

	// MaxTTL is the longest an entry lives after it was stored, whatever
	// invalidations arrive or are lost: it bounds how stale a value can
	// get if the invalidation channel fails silently. It must be at least
	// 1ms. Default: [DefaultMaxTTL].
	MaxTTL time.Duration

	// QueueSize is the length of the invalidation subscription's queue
	// (see [coord.WithQueueSize]). When remote invalidations come faster
	// than the cache applies them and the queue overflows, the
	// Invalidator delivers a PurgeAll and the cache empties itself.
	// It must not be negative. Default: the Invalidator's default
	// ([coord.DefaultInvalidationQueueSize] in coord's backends).
	QueueSize int

	// Logger receives a warning for each purge forced by the Invalidator
	// (reconnect, overflow) and the warnings of the underlying cache
	// library. Default: nil, which discards them.
	Logger *slog.Logger
}

// resolved is Options with the defaults filled in.
type resolved struct {
	maxSize   int
	maxTTL    time.Duration
	queueSize int
	logger    *slog.Logger
}

func (o *Options) resolve() (resolved, error) {
	r := resolved{maxSize: DefaultMaxSize, maxTTL: DefaultMaxTTL}
	if o == nil {
		r.logger = slog.New(slog.DiscardHandler)
		return r, nil
	}
	switch {
	case o.MaxSize < 0:
		return r, fmt.Errorf("%w: cache max size %d is negative", coord.ErrInvalid, o.MaxSize)
	case o.MaxSize > 0:
		r.maxSize = o.MaxSize
	}
	if o.MaxTTL != 0 {
		if err := driver.ValidateTTL("cache max TTL", o.MaxTTL); err != nil {
			return r, err
		}
		r.maxTTL = o.MaxTTL
	}
	if o.QueueSize < 0 {
		return r, fmt.Errorf("%w: cache queue size %d is negative", coord.ErrInvalid, o.QueueSize)
	}
	r.queueSize = o.QueueSize
	r.logger = o.Logger
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	return r, nil
}
