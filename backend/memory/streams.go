package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

// Streams is a [Backend]'s [coord.Streams]. The hub keeps the streams, as a
// Redis server would: entries with "<ms>-<seq>" IDs from the clock, groups
// with their pending entries, dead letters; the rules are the Redis
// backend's (see [coord.Streams]). An entry whose handler runs is never
// claimed: the hub knows it runs, where Redis needs a heartbeat.
//
// A Streams is safe for concurrent use by multiple goroutines.
type Streams struct{ n *Backend }

var _ coord.Streams = (*Streams)(nil)

// streamStore is the hub's streams.
type streamStore struct {
	mu      sync.Mutex
	streams map[string]*mstream
}

// sid is a stream entry ID.
type sid struct{ ms, seq uint64 }

func (a sid) less(b sid) bool { return a.ms < b.ms || a.ms == b.ms && a.seq < b.seq }

func (a sid) String() string {
	return strconv.FormatUint(a.ms, 10) + "-" + strconv.FormatUint(a.seq, 10)
}

// parseSID parses "<ms>-<seq>" or "<ms>"; "" and "-" are the zero ID.
func parseSID(s string) (sid, error) {
	if s == "" || s == "-" {
		return sid{}, nil
	}
	ms, seq, found := strings.Cut(s, "-")
	a, err := strconv.ParseUint(ms, 10, 64)
	if err != nil {
		return sid{}, fmt.Errorf("%w: coord/memory: stream ID %q", coord.ErrInvalid, s)
	}
	var b uint64
	if found {
		if b, err = strconv.ParseUint(seq, 10, 64); err != nil {
			return sid{}, fmt.Errorf("%w: coord/memory: stream ID %q", coord.ErrInvalid, s)
		}
	}
	return sid{a, b}, nil
}

type mentry struct {
	id       sid
	payload  json.RawMessage
	instance string
	ts       time.Time
	trace    coord.TraceCarrier
}

type mpending struct {
	consumer   string
	deliveries int
	last       time.Time  // of the last delivery, or the end of its handler
	runner     *streamSub // non-nil while a handler runs it
}

type mgroup struct {
	lastDelivered sid
	pel           map[sid]*mpending
	consumers     map[string]struct{}
	live          int       // subscriptions consuming now
	seen          time.Time // when a subscription last acted
}

type mstream struct {
	entries []mentry // by ID
	last    sid
	groups  map[string]*mgroup
	dead    []coord.StreamEntry
	trimmed int64         // entries found trimmed while pending
	changed chan struct{} // closed and replaced on a change a consumer waits for
	waited  bool          // a consumer took changed since it was made
}

// stream returns the stream named name, creating it.
func (st *streamStore) stream(name string) *mstream {
	if st.streams == nil {
		st.streams = make(map[string]*mstream)
	}
	s := st.streams[name]
	if s == nil {
		s = &mstream{groups: make(map[string]*mgroup), changed: make(chan struct{})}
		st.streams[name] = s
	}
	return s
}

// notify wakes the stream's consumers, if one waits.
func (s *mstream) notify() {
	if !s.waited {
		return
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.waited = false
}

// waitCh returns the channel closed on the next change.
func (s *mstream) waitCh() <-chan struct{} {
	s.waited = true
	return s.changed
}

// index returns the index of the first entry with an ID at or after id.
func (s *mstream) index(id sid) int {
	return sort.Search(len(s.entries), func(i int) bool { return !s.entries[i].id.less(id) })
}

// find returns the entry with ID id.
func (s *mstream) find(id sid) (*mentry, bool) {
	i := s.index(id)
	if i < len(s.entries) && s.entries[i].id == id {
		return &s.entries[i], true
	}
	return nil, false
}

func (e *mentry) public(stream string, deliveries int) coord.StreamEntry {
	var payload json.RawMessage
	if len(e.payload) > 0 {
		payload = append(json.RawMessage(nil), e.payload...)
	}
	return coord.StreamEntry{Stream: stream, ID: e.id.String(), Payload: payload, InstanceID: e.instance, Timestamp: e.ts, Deliveries: deliveries, Trace: maps.Clone(e.trace)}
}

func (x *Streams) check(ctx context.Context, what string) error {
	if x.n.closed.Load() {
		return errClosed(what)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("coord/memory: %s: %w", what, err)
	}
	return nil
}

func validCount(count int) error {
	if count < 1 || count > coord.MaxStreamCount {
		return fmt.Errorf("%w: coord/memory: count %d is outside 1..%d", coord.ErrInvalid, count, coord.MaxStreamCount)
	}
	return nil
}

// Append stores payload at the end of stream; its ID takes the hub's clock
// in milliseconds, with a sequence number among entries of one
// millisecond.
func (x *Streams) Append(ctx context.Context, stream string, payload any) (string, error) {
	if err := driver.ValidateName("stream", stream); err != nil {
		return "", err
	}
	raw, err := encodeEventPayload(payload, x.n.hub.maxPayload)
	if err != nil {
		return "", err
	}
	if err := x.check(ctx, "Append"); err != nil {
		return "", err
	}
	trace := wireTrace(coord.TraceFrom(ctx))
	st := &x.n.hub.streams
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.stream(stream)
	now := time.Now()
	id := sid{ms: uint64(now.UnixMilli())}
	if !s.last.less(id) {
		id = sid{s.last.ms, s.last.seq + 1}
	}
	s.last = id
	s.entries = append(s.entries, mentry{id: id, payload: raw, instance: x.n.id, ts: time.UnixMilli(int64(id.ms)), trace: trace})
	s.notify()
	return id.String(), nil
}

// Range returns up to count entries of stream from the ID from.
func (x *Streams) Range(ctx context.Context, stream, from string, count int) ([]coord.StreamEntry, error) {
	if err := driver.ValidateName("stream", stream); err != nil {
		return nil, err
	}
	id, err := parseSID(from)
	if err != nil {
		return nil, err
	}
	if err := validCount(count); err != nil {
		return nil, err
	}
	if err := x.check(ctx, "Range"); err != nil {
		return nil, err
	}
	st := &x.n.hub.streams
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.streams[stream]
	if s == nil {
		return nil, nil
	}
	var out []coord.StreamEntry
	for i := s.index(id); i < len(s.entries) && len(out) < count; i++ {
		out = append(out, s.entries[i].public(stream, 0))
	}
	return out, nil
}

// DeadLetters returns up to count of stream's dead letters, oldest first.
func (x *Streams) DeadLetters(ctx context.Context, stream string, count int) ([]coord.StreamEntry, error) {
	if err := driver.ValidateName("stream", stream); err != nil {
		return nil, err
	}
	if err := validCount(count); err != nil {
		return nil, err
	}
	if err := x.check(ctx, "DeadLetters"); err != nil {
		return nil, err
	}
	st := &x.n.hub.streams
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.streams[stream]
	if s == nil {
		return nil, nil
	}
	out := make([]coord.StreamEntry, 0, min(count, len(s.dead)))
	for _, e := range s.dead[:min(count, len(s.dead))] {
		e.Payload = append(json.RawMessage(nil), e.Payload...)
		e.Trace = maps.Clone(e.Trace)
		out = append(out, e)
	}
	return out, nil
}

// Info reports the state of stream and its groups.
func (x *Streams) Info(ctx context.Context, stream string) (coord.StreamInfo, error) {
	if err := driver.ValidateName("stream", stream); err != nil {
		return coord.StreamInfo{}, err
	}
	if err := x.check(ctx, "Info"); err != nil {
		return coord.StreamInfo{}, err
	}
	st := &x.n.hub.streams
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.streams[stream]
	if s == nil {
		return coord.StreamInfo{}, nil
	}
	now := time.Now()
	info := coord.StreamInfo{Length: int64(len(s.entries)), DeadLetters: int64(len(s.dead)), TrimmedWhilePending: s.trimmed}
	if len(s.entries) > 0 {
		info.FirstID = s.entries[0].id.String()
		info.LastID = s.entries[len(s.entries)-1].id.String()
	}
	for name, g := range s.groups {
		gi := coord.StreamGroupInfo{Name: name, Consumers: len(g.consumers), Pending: int64(len(g.pel)), LastDeliveredID: g.lastDelivered.String()}
		gi.Lag = int64(len(s.entries) - s.index(sid{g.lastDelivered.ms, g.lastDelivered.seq + 1}))
		for _, p := range g.pel {
			if p.runner == nil {
				gi.OldestPending = max(gi.OldestPending, now.Sub(p.last))
			}
		}
		info.Groups = append(info.Groups, gi)
	}
	sort.Slice(info.Groups, func(i, j int) bool { return info.Groups[i].Name < info.Groups[j].Name })
	return info, nil
}

// Trim drops entries of stream as r says.
func (x *Streams) Trim(ctx context.Context, stream string, r coord.Retention) (int64, error) {
	if err := driver.ValidateName("stream", stream); err != nil {
		return 0, err
	}
	r, err := coord.CheckRetention(r)
	if err != nil {
		return 0, err
	}
	if err := x.check(ctx, "Trim"); err != nil {
		return 0, err
	}
	st := &x.n.hub.streams
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.streams[stream]
	if s == nil {
		return 0, nil
	}
	now := time.Now()
	drop := 0
	if r.MaxLen > 0 && int64(len(s.entries)) > r.MaxLen {
		drop = len(s.entries) - int(r.MaxLen)
	}
	if r.MaxAge > 0 {
		minID := sid{ms: uint64(max(now.Add(-r.MaxAge).UnixMilli(), 0))}
		drop = max(drop, s.index(minID))
	}
	if r.Safe {
		for _, g := range s.groups {
			if g.live == 0 && now.Sub(g.seen) > r.GroupTTL {
				continue
			}
			keep := s.index(sid{g.lastDelivered.ms, g.lastDelivered.seq + 1})
			for id := range g.pel {
				keep = min(keep, s.index(id))
			}
			drop = min(drop, keep)
		}
	}
	if drop == 0 {
		return 0, nil
	}
	s.entries = append([]mentry(nil), s.entries[drop:]...)
	s.notify()
	return int64(drop), nil
}

// Consume delivers stream's entries to fn as a member of group.
func (x *Streams) Consume(ctx context.Context, stream, group string, fn func(context.Context, coord.StreamEntry) error, opts ...coord.ConsumeOption) (coord.Subscription, error) {
	if err := driver.ValidateName("stream", stream); err != nil {
		return nil, err
	}
	if err := driver.ValidateName("group", group); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: coord/memory: nil handler", coord.ErrInvalid)
	}
	o, err := coord.NewConsumeOptions(opts...)
	if err != nil {
		return nil, err
	}
	if o.Consumer == "" {
		o.Consumer = x.n.id
	}
	if err := driver.ValidateName("consumer", o.Consumer); err != nil {
		return nil, err
	}
	if err := x.check(ctx, "Consume"); err != nil {
		return nil, err
	}
	n := x.n
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	sub := &streamSub{
		n: n, stream: stream, group: group, o: o, fn: fn,
		ctx: hctx, cancel: cancel,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		slots: make(chan struct{}, o.Concurrency),
	}
	st := &n.hub.streams
	st.mu.Lock()
	s := st.stream(stream)
	g := s.groups[group]
	if g == nil {
		g = &mgroup{pel: make(map[sid]*mpending), consumers: make(map[string]struct{})}
		if o.Start == coord.FromLatest {
			g.lastDelivered = s.last
		}
		s.groups[group] = g
	}
	g.consumers[o.Consumer] = struct{}{}
	g.live++
	g.seen = time.Now()
	for id, p := range g.pel {
		if p.consumer == o.Consumer && p.runner == nil {
			sub.backlog = append(sub.backlog, id)
		}
	}
	sort.Slice(sub.backlog, func(i, j int) bool { return sub.backlog[i].less(sub.backlog[j]) })
	st.mu.Unlock()

	n.subMu.Lock()
	if n.closed.Load() {
		n.subMu.Unlock()
		sub.leave()
		cancel()
		return nil, errClosed("Consume")
	}
	n.wg.Add(1)
	n.subMu.Unlock()
	go sub.loop(ctx)
	return sub, nil
}

// streamSub is one Consume: a goroutine that hands entries to handler
// goroutines, as many at once as the concurrency allows.
type streamSub struct {
	n             *Backend
	stream, group string
	o             coord.ConsumeOptions
	fn            func(context.Context, coord.StreamEntry) error
	ctx           context.Context // the handlers'
	cancel        context.CancelFunc
	stopOnce      sync.Once
	stop          chan struct{}
	done          chan struct{}
	slots         chan struct{}
	handlers      sync.WaitGroup
	backlog       []sid // own pending entries found at the start
}

var _ coord.Subscription = (*streamSub)(nil)

// Unsubscribe ends the subscription; running handlers may finish.
func (sub *streamSub) Unsubscribe() { sub.stopOnce.Do(func() { close(sub.stop) }) }

// Done is closed once the subscription ended and no handler runs.
func (sub *streamSub) Done() <-chan struct{} { return sub.done }

// leave takes the subscription out of its group's live count.
func (sub *streamSub) leave() {
	st := &sub.n.hub.streams
	st.mu.Lock()
	g := st.stream(sub.stream).groups[sub.group]
	g.live--
	g.seen = time.Now()
	st.mu.Unlock()
}

func (sub *streamSub) loop(ctx context.Context) {
	defer sub.n.wg.Done()
	defer close(sub.done)
	defer sub.handlers.Wait()
	defer sub.cancel()
	defer sub.leave()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case sub.slots <- struct{}{}:
		case <-sub.stop:
			return
		case <-sub.n.stop:
			return
		case <-ctx.Done():
			return
		}
		for {
			e, changed, wake := sub.pick()
			if e != nil {
				sub.handlers.Add(1)
				go sub.run(*e)
				break
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(wake)
			select {
			case <-changed:
			case <-timer.C:
			case <-sub.stop:
				return
			case <-sub.n.stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}
}

// pick takes the next entry for the subscription: its own pending entries
// found at the start, then a new entry, then a pending entry idle for
// ClaimAfter. Without one it returns the channel closed on the next
// change and how long until a pending entry may be claimed.
func (sub *streamSub) pick() (*coord.StreamEntry, <-chan struct{}, time.Duration) {
	st := &sub.n.hub.streams
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.stream(sub.stream)
	g := s.groups[sub.group]
	now := time.Now()
	g.seen = now
	take := func(id sid, p *mpending, e *mentry) *coord.StreamEntry {
		p.consumer = sub.o.Consumer
		p.deliveries++
		p.last = now
		p.runner = sub
		out := e.public(sub.stream, p.deliveries)
		return &out
	}
	for len(sub.backlog) > 0 {
		id := sub.backlog[0]
		sub.backlog = sub.backlog[1:]
		p := g.pel[id]
		if p == nil || p.runner != nil || p.consumer != sub.o.Consumer {
			continue
		}
		if e, ok := sub.claimable(s, g, id, p); ok {
			return take(id, p, e), nil, 0
		}
	}
	if i := s.index(sid{g.lastDelivered.ms, g.lastDelivered.seq + 1}); i < len(s.entries) {
		e := &s.entries[i]
		g.lastDelivered = e.id
		p := &mpending{}
		g.pel[e.id] = p
		return take(e.id, p, e), nil, 0
	}
	wake := time.Hour
	ids := make([]sid, 0, len(g.pel))
	for id, p := range g.pel {
		if p.runner == nil {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].less(ids[j]) })
	for _, id := range ids {
		p := g.pel[id]
		if idle := now.Sub(p.last); idle < sub.o.ClaimAfter {
			wake = min(wake, sub.o.ClaimAfter-idle)
			continue
		}
		if e, ok := sub.claimable(s, g, id, p); ok {
			return take(id, p, e), nil, 0
		}
	}
	return nil, s.waitCh(), wake
}

// claimable reports whether the pending entry id may be delivered again.
// An entry trimmed away is dropped from the group and counted; one that
// had its deliveries is dead-lettered.
func (sub *streamSub) claimable(s *mstream, g *mgroup, id sid, p *mpending) (*mentry, bool) {
	e, ok := s.find(id)
	if !ok {
		delete(g.pel, id)
		s.trimmed++
		return nil, false
	}
	if p.deliveries >= sub.o.MaxDeliveries {
		delete(g.pel, id)
		s.dead = append(s.dead, e.public(sub.stream, p.deliveries))
		return nil, false
	}
	return e, true
}

// run calls the handler for e and acknowledges it on a nil return.
func (sub *streamSub) run(e coord.StreamEntry) {
	defer sub.handlers.Done()
	err := sub.call(e)
	id, _ := parseSID(e.ID)
	st := &sub.n.hub.streams
	st.mu.Lock()
	s := st.stream(sub.stream)
	g := s.groups[sub.group]
	if p := g.pel[id]; p != nil && p.runner == sub {
		p.runner = nil
		p.last = time.Now()
		if err == nil {
			delete(g.pel, id)
		}
	}
	g.seen = time.Now()
	s.notify()
	st.mu.Unlock()
	<-sub.slots
}

// call runs the handler; a panic is an error.
func (sub *streamSub) call(e coord.StreamEntry) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("coord/memory: stream handler panicked: %v", r)
		}
	}()
	return sub.fn(sub.ctx, e)
}
