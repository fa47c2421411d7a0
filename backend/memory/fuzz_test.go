package memory

import (
	"context"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

// FuzzPublishRaw feeds foreign wire messages to a node: each is either
// counted as malformed or decoded into a valid message, and nothing
// panics.
func FuzzPublishRaw(f *testing.F) {
	for _, s := range []string{
		`{"instanceId":"node","cacheKey":"user:1","metadata":{"by":"node"},"timestamp":1700000000123}`,
		`{"instanceId":"node","cacheKey":"user:[a-z]*","metadata":null,"timestamp":1700000000456}`,
		`{"instanceId":"node","event":"shard.rebalance","payload":{"id":1234567890123456789},"timestamp":1.7e12}`,
		`not json`, `[]`, `""`, `{"cacheKey":"a\\"}`, "\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		for _, ch := range []string{ChannelInvalidate, ChannelPattern, ChannelEvent} {
			var m *message
			var err error
			switch ch {
			case ChannelInvalidate:
				m, err = decodeInvalidation(coord.KeyInvalidation, []byte(payload))
			case ChannelPattern:
				m, err = decodeInvalidation(coord.PatternInvalidation, []byte(payload))
			default:
				m, err = decodeEvent([]byte(payload))
			}
			if err != nil {
				continue
			}
			switch {
			case ch == ChannelPattern && driver.ValidateGlob(m.key) != nil,
				ch != ChannelPattern && driver.ValidateName("key", m.key) != nil:
				t.Fatalf("%s: decoded an invalid key %q", ch, m.key)
			}
			if len(m.payload) > 0 {
				if _, err := driver.EncodePayload(m.payload, 0); err != nil && len(m.payload) <= driver.DefaultMaxPayload {
					t.Fatalf("%s: decoded payload %q is not valid JSON", ch, m.payload)
				}
			}
		}
		// Through a hub: no panic, and the message is either delivered
		// or counted.
		hub := NewHub(nil)
		n := hub.New(nil)
		defer n.Close(context.Background())
		_ = hub.PublishRaw(ChannelInvalidate, []byte(payload))
	})
}
