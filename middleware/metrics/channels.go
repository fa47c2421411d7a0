package metrics

import (
	"github.com/cgn-bot/coord"
	"github.com/prometheus/client_golang/prometheus"
)

// channelNamer is implemented by the Invalidator and EventBus of a backend
// that names its pub/sub channels (the Redis backend: its names carry its
// key prefix).
type channelNamer interface {
	Channels() (invalidate, pattern, event string)
}

// channelsOf returns the channel names of part (an Invalidator or an
// EventBus) or of what it wraps, following the Unwrap methods of
// decorators; ok is false when none of them names its channels.
func channelsOf(part any) (names [numChannels]string, ok bool) {
	for part != nil {
		if n, is := part.(channelNamer); is {
			names[chanKey], names[chanPattern], names[chanEvent] = n.Channels()
			return names, true
		}
		switch u := part.(type) {
		case interface{ Unwrap() coord.Invalidator }:
			part = u.Unwrap()
		case interface{ Unwrap() coord.EventBus }:
			part = u.Unwrap()
		default:
			return names, false
		}
	}
	return names, false
}

// receivedFor returns the counters of distributed_cache_messages_received_total
// for the channels of part: labelled with the names the backend gives
// them, or else with [Options.ChannelPrefix] and the channel suffixes of
// docs/WIRE.md. All three series exist from then on, at zero until used.
func (m *Middleware) receivedFor(part any) [numChannels]prometheus.Counter {
	names, ok := channelsOf(part)
	if !ok {
		p := m.channelPfx
		names = [numChannels]string{p + "cache:invalidate", p + "cache:invalidate:pattern", p + "shard:event"}
	}
	var c [numChannels]prometheus.Counter
	for i, n := range names {
		c[i] = m.received.WithLabelValues(n)
	}
	return c
}
