package redis

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/secret"
	"github.com/cgn-bot/coord/internal/wire"
)

// Administrative reads for tools such as coordctl. They read the key
// layout directly and never return a lease's token: a lease is named by
// its resource and told apart from the next one by [LeaseInfo].Tag.

// LeaseState says what a lease key holds.
type LeaseState string

// Lease states.
const (
	// LeaseHeld: a holder has the lease.
	LeaseHeld LeaseState = "held"
	// LeaseReserved: the lease was just released with waiters; it is kept
	// for them for the handoff window and nobody holds it.
	LeaseReserved LeaseState = "reserved"
	// LeaseFree: nobody holds the lease.
	LeaseFree LeaseState = "free"
)

// LeaseInfo describes one lease as an administrator may see it. It
// carries no secret.
type LeaseInfo struct {
	// Resource is the name the lease is on.
	Resource string
	// State says whether the lease is held.
	State LeaseState
	// TTL is the time left on the lease; -1 when the key has no expiry
	// (a foreign writer), 0 when the lease is free.
	TTL time.Duration
	// Fence is the last fence drawn for the resource: the holder's while
	// the lease is held. 0 when the resource has no fence counter.
	Fence int64
	// Holder is the instance ID of the holder, recorded in the lease
	// value beside its secret part (empty for a value that records none,
	// such as an older writer's). The secret part is never returned.
	Holder string
	// Tag is a short, non-reversible tag of the lease value (the first 8
	// hex digits of its SHA-256), so two reads can tell whether the lease
	// changed hands; empty when the lease is not held.
	Tag string
}

// leaseInfoScript reads a lease, its PTTL and its fence counter at one
// moment. KEYS[1] lease key, KEYS[2] fence counter (same hash slot).
var leaseInfoScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
local t = redis.call('PTTL', KEYS[1])
local f = redis.call('GET', KEYS[2])
return {v or false, t, f or false}
`)

// Lease returns what the lease on resource holds now. A resource nobody
// holds is [LeaseFree], not an error. The error wraps [coord.ErrInvalid]
// for a bad name.
func (b *Backend) Lease(ctx context.Context, resource string) (LeaseInfo, error) {
	if err := b.checkOpen(); err != nil {
		return LeaseInfo{}, err
	}
	if err := driver.ValidateName("resource", resource); err != nil {
		return LeaseInfo{}, err
	}
	key, fence := b.keys.lockKeys(resource)
	res, err := leaseInfoScript.Run(ctx, b.client, []string{key, fence}).Slice()
	if err := b.fail(ctx, "lease info", err); err != nil {
		return LeaseInfo{}, err
	}
	return parseLeaseInfo(resource, res)
}

// Leases returns the leases held (or reserved for waiters) on resources
// whose name starts with prefix ("" for all), sorted by resource. It
// scans with SCAN, on every master of a Cluster. Keys that do not parse
// as a lease key of this Backend's prefix, or name a resource that is not
// a valid name (a foreign writer's), are skipped.
func (b *Backend) Leases(ctx context.Context, prefix string) ([]LeaseInfo, error) {
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	if prefix != "" {
		if err := driver.ValidateName("resource prefix", prefix); err != nil {
			return nil, err
		}
	}
	head := b.keys.prefix + "lock:{"
	match := globQuote(head) + globQuote(escapeName(prefix)) + "*}"
	seen := make(map[string]bool)
	var names []string
	for key, err := range b.scan(ctx, match) {
		if err != nil {
			return nil, err
		}
		body, ok := strings.CutPrefix(key, head)
		if !ok || !strings.HasSuffix(body, "}") {
			continue
		}
		name, ok := unescapeName(body[:len(body)-1])
		if !ok || !strings.HasPrefix(name, prefix) || seen[name] || driver.ValidateName("resource", name) != nil {
			continue
		}
		seen[name] = true
		names = append(names, name)
	}
	slices.Sort(names)
	out := make([]LeaseInfo, 0, len(names))
	const batch = 100
	for len(names) > 0 {
		n := min(batch, len(names))
		infos, err := b.leaseInfos(ctx, names[:n])
		if err != nil {
			return nil, err
		}
		for _, li := range infos {
			if li.State != LeaseFree { // expired since the scan
				out = append(out, li)
			}
		}
		names = names[n:]
	}
	return out, nil
}

// leaseInfos reads the leases of names in one pipeline.
func (b *Backend) leaseInfos(ctx context.Context, names []string) ([]LeaseInfo, error) {
	cmds := make([]*goredis.Cmd, len(names))
	_, err := b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, name := range names {
			key, fence := b.keys.lockKeys(name)
			cmds[i] = leaseInfoScript.Eval(ctx, p, []string{key, fence})
		}
		return nil
	})
	if err := b.fail(ctx, "lease info", err); err != nil {
		return nil, err
	}
	out := make([]LeaseInfo, 0, len(names))
	for i, c := range cmds {
		res, err := c.Slice()
		if err := b.fail(ctx, "lease info", err); err != nil {
			return nil, err
		}
		li, err := parseLeaseInfo(names[i], res)
		if err != nil {
			return nil, err
		}
		out = append(out, li)
	}
	return out, nil
}

// parseLeaseInfo validates the reply of leaseInfoScript.
func parseLeaseInfo(resource string, res []any) (LeaseInfo, error) {
	li := LeaseInfo{Resource: resource, State: LeaseFree}
	bad := func(what string) (LeaseInfo, error) {
		return LeaseInfo{}, fmt.Errorf("%w: coord/redis: lease %q: %s", coord.ErrInvalid, resource, what)
	}
	if len(res) != 3 {
		return bad("malformed reply")
	}
	if f, ok := res[2].(string); ok {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 1 {
			return bad("fence counter is not a positive integer")
		}
		li.Fence = n
	}
	v, ok := res[0].(string)
	if !ok {
		return li, nil // no lease
	}
	pttl, ok := res[1].(int64)
	if !ok {
		return bad("malformed PTTL")
	}
	switch {
	case pttl == -2:
		return li, nil // expired between the reads (not in Redis: one script)
	case pttl < 0:
		li.TTL = -1
	default:
		li.TTL = time.Duration(pttl) * time.Millisecond
	}
	if v == handoffMarker {
		li.State = LeaseReserved
		return li, nil
	}
	li.State = LeaseHeld
	li.Holder = holderOf(v)
	li.Tag = secret.Redact(v)
	return li, nil
}

// handoffMarker is what a lease key holds while it is reserved for
// waiters (see lock_release.lua).
const handoffMarker = "\x00handoff"

// globQuote escapes the glob metacharacters of s for SCAN MATCH.
func globQuote(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			sb.WriteByte('\\')
		}
		sb.WriteByte(s[i])
	}
	return sb.String()
}

// unescapeName reverses escapeName. It reports false for a string that
// escapeName cannot have written.
func unescapeName(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		for i := 0; i < len(s); i++ {
			if needsEscape(s[i]) {
				return "", false
			}
		}
		return s, true
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if needsEscape(c) {
				return "", false
			}
			sb.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil || !needsEscape(byte(n)) || s[i+1:i+3] != strings.ToUpper(s[i+1:i+3]) {
			return "", false
		}
		sb.WriteByte(byte(n))
		i += 2
	}
	return sb.String(), true
}

// TailMessage is one message seen by [Backend.Tail].
type TailMessage struct {
	// Channel is the channel it came on.
	Channel string
	// Invalidation is set for a key or pattern invalidation.
	Invalidation *coord.Invalidation
	// Event is set for an event.
	Event *coord.Event
	// Err is set for a message that could not be decoded (it wraps
	// [coord.ErrInvalid]); Size is then its length in bytes.
	Err  error
	Size int
	// Gap is set when the connection was lost and made again: messages
	// published meanwhile were missed.
	Gap bool
}

// TailOptions say what [Backend.Tail] follows.
type TailOptions struct {
	// Invalidations follows the key and pattern invalidation channels.
	Invalidations bool
	// Events follows the event channel (every topic).
	Events bool
	// Ready, when set, is called once every channel is subscribed.
	Ready func()
	// PingInterval is how long the connection may stay silent before it
	// is pinged; a ping that goes unanswered for as long again makes it
	// reconnect. Default: [DefaultHealthInterval].
	PingInterval time.Duration
}

// Tail calls fn for each message on the channels opts names, from every
// publisher (this Backend's own included), on a connection of its own,
// until ctx ends; it then returns nil. Messages that do not decode are
// passed on with Err set rather than dropped, and a reconnect is passed
// on as a Gap. fn runs on Tail's goroutine: a slow fn delays the next
// message and, past the server's output buffer limits, gets the
// connection closed (a Gap).
func (b *Backend) Tail(ctx context.Context, opts TailOptions, fn func(TailMessage)) error {
	if err := b.checkOpen(); err != nil {
		return err
	}
	var chans []string
	if opts.Invalidations {
		chans = append(chans, b.keys.chInvalidate, b.keys.chPattern)
	}
	if opts.Events {
		chans = append(chans, b.keys.chEvent)
	}
	if len(chans) == 0 {
		return fmt.Errorf("%w: coord/redis: tail: no channel", coord.ErrInvalid)
	}
	interval := opts.PingInterval
	if interval <= 0 {
		interval = DefaultHealthInterval
	}
	ps := b.client.Subscribe(ctx, chans...)
	defer func() { _ = ps.Close() }()
	pending := make(map[string]bool, len(chans)) // confirmations awaited
	for _, c := range chans {
		pending[c] = true
	}
	ready, broken, pinged := false, false, false
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, interval)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			timeout := errors.As(err, &ne) && ne.Timeout()
			switch {
			case timeout && !pinged:
				pinged = true
				_ = ps.Ping(ctx) // an error shows at the next receive
			case timeout:
				// The ping went unanswered: go-redis keeps a connection
				// that timed out, so replace it.
				_ = ps.Close()
				ps = b.client.Subscribe(ctx, chans...)
				broken, pinged = true, false
			default:
				// The connection failed: go-redis dials again and
				// resubscribes at the next receive.
				broken, pinged = true, false
				if sleepCtx(ctx, 100*time.Millisecond) != nil {
					return nil
				}
			}
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *goredis.Subscription:
			if broken && m.Kind == "subscribe" {
				broken = false
				fn(TailMessage{Channel: m.Channel, Gap: true})
			}
			delete(pending, m.Channel)
			if !ready && len(pending) == 0 {
				ready = true
				if opts.Ready != nil {
					opts.Ready()
				}
			}
		case *goredis.Message:
			fn(b.decodeTail(m))
		}
	}
	return nil
}

// decodeTail decodes a message of a tailed channel.
func (b *Backend) decodeTail(m *goredis.Message) TailMessage {
	tm := TailMessage{Channel: m.Channel}
	switch m.Channel {
	case b.keys.chInvalidate, b.keys.chPattern:
		inv, err := wire.DecodeInvalidation(m.Payload, m.Channel == b.keys.chPattern)
		if err != nil {
			tm.Err, tm.Size = err, len(m.Payload)
			return tm
		}
		tm.Invalidation = &inv
	case b.keys.chEvent:
		ev, err := wire.DecodeEvent(m.Payload)
		if err != nil {
			tm.Err, tm.Size = err, len(m.Payload)
			return tm
		}
		tm.Event = &ev
	default:
		tm.Err = fmt.Errorf("%w: coord/redis: message on channel %q", coord.ErrInvalid, m.Channel)
		tm.Size = len(m.Payload)
	}
	return tm
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// scan iterates over the keys matching the glob match, with SCAN (never
// KEYS): on every master of a Cluster, else on the one server. As SCAN
// does, it may yield a key more than once. An error ends the iteration
// and is yielded with an empty key.
func (b *Backend) scan(ctx context.Context, match string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if err := b.checkOpen(); err != nil {
			yield("", err)
			return
		}
		nodes := []goredis.Cmdable{b.client}
		if cc, ok := b.client.(*goredis.ClusterClient); ok {
			nodes = nodes[:0]
			var mu sync.Mutex
			err := cc.ForEachMaster(ctx, func(_ context.Context, c *goredis.Client) error {
				mu.Lock()
				nodes = append(nodes, c)
				mu.Unlock()
				return nil
			})
			if err := b.fail(ctx, "scan", err); err != nil {
				yield("", err)
				return
			}
		}
		for _, n := range nodes {
			var cursor uint64
			for {
				keys, next, err := n.Scan(ctx, cursor, match, 100).Result()
				if err := b.fail(ctx, "scan", err); err != nil {
					yield("", err)
					return
				}
				for _, k := range keys {
					if !yield(k, nil) {
						return
					}
				}
				if next == 0 {
					break
				}
				cursor = next
			}
		}
	}
}

// Holder is one holder of a lease as an administrator may see it (a read
// lease, a permit, a writer or a waiting writer's intent). It carries no
// secret.
type Holder struct {
	// InstanceID is the holding instance's ID, recorded in the lease
	// value (empty for a value that records none).
	InstanceID string
	// TTL is the time left, by the server's clock; -1 when unknown.
	TTL time.Duration
	// Tag is a short, non-reversible tag of the lease value (8 hex
	// digits of its SHA-256), to tell two holders of one instance apart.
	Tag string
}

// RWInfo describes a read-write resource. It carries no secret.
type RWInfo struct {
	// Resource is the resource's name.
	Resource string
	// Writer is the write lease's holder; nil when none.
	Writer *Holder
	// Readers are the live read leases, soonest to end first.
	Readers []Holder
	// WritersWaiting are the live intents of waiting writers, soonest to
	// lapse first.
	WritersWaiting []Holder
	// Fence is the last fence drawn for the resource (readers and writers
	// share the counter); 0 when there is none.
	Fence int64
}

// SemaphoreInfo describes the permits of a resource. It carries no secret.
type SemaphoreInfo struct {
	// Resource is the resource's name.
	Resource string
	// Holders are the live permits, soonest to end first.
	Holders []Holder
	// Fence is the last fence drawn for the resource; 0 when there is none.
	Fence int64
}

// zsetInfoLua reads the live members of the ZSETs KEYS[from...] with their
// time left (server clock): returns {now, {member, ms, ...}, ...}.
const zsetInfoLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function live(key)
  local out = {}
  local z = redis.call('ZRANGEBYSCORE', key, '(' .. now, '+inf', 'WITHSCORES')
  for i = 1, #z, 2 do
    out[#out + 1] = z[i]
    out[#out + 1] = tonumber(z[i + 1]) - now
  end
  return out
end
`

// rwInfoScript reads a read-write resource at one moment: KEYS writer,
// fence, readers, intents. Returns {writer value or false, its PTTL,
// fence or false, readers, intents} (see zsetInfoLua).
var rwInfoScript = goredis.NewScript(zsetInfoLua + `
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2]), live(KEYS[3]), live(KEYS[4])}
`)

// semInfoScript reads a semaphore at one moment: KEYS permits, fence.
// Returns {fence or false, permits}.
var semInfoScript = goredis.NewScript(zsetInfoLua + `
return {redis.call('GET', KEYS[2]), live(KEYS[1])}
`)

// RW returns who holds the read-write resource now. The error wraps
// [coord.ErrInvalid] for a bad name or a reply that does not parse.
func (b *Backend) RW(ctx context.Context, resource string) (RWInfo, error) {
	if err := b.checkOpen(); err != nil {
		return RWInfo{}, err
	}
	if err := driver.ValidateName("resource", resource); err != nil {
		return RWInfo{}, err
	}
	keys, _ := b.keys.rwKeys(resource)
	res, err := rwInfoScript.Run(ctx, b.client, keys).Slice()
	if err := b.fail(ctx, "read-write info", err); err != nil {
		return RWInfo{}, err
	}
	bad := fmt.Errorf("%w: coord/redis: read-write resource %q: malformed reply", coord.ErrInvalid, resource)
	if len(res) != 5 {
		return RWInfo{}, bad
	}
	ri := RWInfo{Resource: resource}
	if v, ok := res[0].(string); ok {
		pttl, _ := res[1].(int64)
		h := Holder{InstanceID: holderOf(v), TTL: -1, Tag: secret.Redact(v)}
		if pttl >= 0 {
			h.TTL = time.Duration(pttl) * time.Millisecond
		}
		ri.Writer = &h
	}
	if ri.Fence, err = parseFence(res[2]); err != nil {
		return RWInfo{}, bad
	}
	if ri.Readers, err = parseHolders(res[3]); err != nil {
		return RWInfo{}, bad
	}
	if ri.WritersWaiting, err = parseHolders(res[4]); err != nil {
		return RWInfo{}, bad
	}
	return ri, nil
}

// Semaphore returns the live permits of resource now. The error wraps
// [coord.ErrInvalid] for a bad name or a reply that does not parse.
func (b *Backend) Semaphore(ctx context.Context, resource string) (SemaphoreInfo, error) {
	if err := b.checkOpen(); err != nil {
		return SemaphoreInfo{}, err
	}
	if err := driver.ValidateName("resource", resource); err != nil {
		return SemaphoreInfo{}, err
	}
	keys, _ := b.keys.semKeys(resource)
	res, err := semInfoScript.Run(ctx, b.client, keys).Slice()
	if err := b.fail(ctx, "semaphore info", err); err != nil {
		return SemaphoreInfo{}, err
	}
	bad := fmt.Errorf("%w: coord/redis: semaphore %q: malformed reply", coord.ErrInvalid, resource)
	if len(res) != 2 {
		return SemaphoreInfo{}, bad
	}
	si := SemaphoreInfo{Resource: resource}
	if si.Fence, err = parseFence(res[0]); err != nil {
		return SemaphoreInfo{}, bad
	}
	if si.Holders, err = parseHolders(res[1]); err != nil {
		return SemaphoreInfo{}, bad
	}
	return si, nil
}

// parseFence reads a fence counter (nil: none).
func parseFence(v any) (int64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, errors.New("fence counter is not a positive integer")
	}
	return n, nil
}

// parseHolders reads a {member, ms left, ...} list of zsetInfoLua.
func parseHolders(v any) ([]Holder, error) {
	list, ok := v.([]any)
	if !ok || len(list)%2 != 0 {
		return nil, errors.New("malformed holder list")
	}
	out := make([]Holder, 0, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		m, ok1 := list[i].(string)
		ms, ok2 := list[i+1].(int64)
		if !ok1 || !ok2 {
			return nil, errors.New("malformed holder list")
		}
		out = append(out, Holder{InstanceID: holderOf(m), TTL: time.Duration(ms) * time.Millisecond, Tag: secret.Redact(m)})
	}
	return out, nil
}
