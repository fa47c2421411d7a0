package redis

import (
	"strings"
)

// escapeName percent-encodes the bytes of a user-supplied name that could
// change a key's hash tag ('{', '}'), make the encoding ambiguous ('%'),
// act as glob metacharacters in a SCAN MATCH or PSUBSCRIBE over our keys
// ('*', '?', '[', ']', '\\'), or split a line (space and control bytes).
// The encoding is injective, so two names never share a key or channel.
func escapeName(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func needsEscape(c byte) bool {
	switch c {
	case '{', '}', '%', '*', '?', '[', ']', '\\', ' ', 0x7f:
		return true
	}
	return c < 0x20
}

// keyspace names every key and channel of one Backend. See the package
// documentation for the layout.
type keyspace struct {
	prefix string

	// Channels shared with the Node fleet.
	chInvalidate, chPattern, chEvent string

	// Session keys, all in the hash slot of the tag "{s}".
	sessPrefix, sessExp, sessByUser, sessCreated, sessUsers string
}

func newKeyspace(prefix string) keyspace {
	return keyspace{
		prefix:       prefix,
		chInvalidate: prefix + "cache:invalidate",
		chPattern:    prefix + "cache:invalidate:pattern",
		chEvent:      prefix + "shard:event",
		sessPrefix:   prefix + "{s}:s:",
		sessExp:      prefix + "{s}:exp",
		sessByUser:   prefix + "{s}:byuser",
		sessCreated:  prefix + "{s}:created",
		sessUsers:    prefix + "{s}:users",
	}
}

// lockKey returns the lease key of resource: prefix + "lock:{" + escaped
// resource + "}", so the lease, its fence and its wake channel share the
// hash slot of the resource.
func (k keyspace) lockKey(resource string) string {
	return k.prefix + "lock:{" + escapeName(resource) + "}"
}

// lockKeys returns the lease key and the fence key of resource (one
// allocation: the lease key is a prefix of the fence key).
func (k keyspace) lockKeys(resource string) (key, fence string) {
	fence = k.prefix + "lock:{" + escapeName(resource) + "}:fence"
	return fence[:len(fence)-len(":fence")], fence
}

func (k keyspace) wakeChannel(lockKey string) string { return lockKey + ":wake" }

// isWakeChannel reports whether ch is a lock wake-up channel of this
// keyspace.
func (k keyspace) isWakeChannel(ch string) bool {
	return strings.HasPrefix(ch, k.prefix+"lock:{") && strings.HasSuffix(ch, "}:wake")
}

func (k keyspace) sessionKey(handle string) string { return k.sessPrefix + handle }

// sessionKeys returns the keys of a session script: first, then the four
// indexes, then extra.
func (k keyspace) sessionKeys(first string, extra ...string) []string {
	keys := make([]string, 0, 5+len(extra))
	keys = append(keys, first, k.sessExp, k.sessByUser, k.sessCreated, k.sessUsers)
	return append(keys, extra...)
}

// rwKeys returns the keys of a read-write resource, all in the hash slot
// of its name: the writer key, the fence counter, the readers ZSET and the
// writer intents ZSET (the order of the scripts' KEYS), and its wake
// channel.
func (k keyspace) rwKeys(resource string) (keys []string, channel string) {
	// One allocation for the five names (every read lease needs them):
	// each is a slice of it, base + suffix.
	p, e := k.prefix+"rw:{", escapeName(resource)
	all := p + e + "}:w" + p + e + "}:fence" + p + e + "}:r" + p + e + "}:q" + p + e + "}:wake"
	n, at := len(p)+len(e)+1, 0
	next := func(suffix int) string {
		s := all[at : at+n+suffix]
		at += n + suffix
		return s
	}
	return []string{next(2), next(6), next(2), next(2)}, next(5)
}

// semKeys returns the keys of a semaphore (the permits ZSET and the
// fence counter, in one hash slot) and its wake channel.
func (k keyspace) semKeys(resource string) (keys []string, channel string) {
	base := k.prefix + "sem:{" + escapeName(resource) + "}"
	return []string{base, base + ":fence"}, base + ":wake"
}

// electKeys returns the keys of an election (the leadership hash and the
// fence counter, whose draws are the terms, in one hash slot) and its
// changes channel.
func (k keyspace) electKeys(election string) (keys []string, channel string) {
	base := k.prefix + "elect:{" + escapeName(election) + "}"
	return []string{base, base + ":fence"}, base + ":changes"
}
