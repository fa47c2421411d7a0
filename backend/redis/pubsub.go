package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
)

// chanKind says what a subscribed channel carries.
type chanKind int

const (
	kindInvalidate chanKind = iota + 1
	kindPattern
	kindEvent
	kindWake
)

// chanState is one channel the subscriber connection is subscribed to.
type chanState struct {
	kind      chanKind
	refs      int
	ready     chan struct{} // closed once the server confirmed the subscription
	confirmed bool
	seq       uint64 // the confirmation count that confirms this subscription
	// purge asks for a PurgeAll of the invalidation subscribers once the
	// subscription is confirmed: one was handed out before it was live.
	purge bool
}

// chanCount counts the SUBSCRIBE commands sent for a channel and the
// confirmations received. A confirmation beyond those sent is a
// resubscription after a reconnect: a gap in delivery.
type chanCount struct{ sent, acked uint64 }

// subscriberConfig is all the subscriber knows of the layers above it:
// the client it subscribes with, its timings, a registry of handlers by
// channel, and the hooks it reports to. The subscriber is the lowest
// layer: it calls these and nothing else, while the invalidator, the event
// bus and the locker call down into it.
type subscriberConfig struct {
	client            goredis.UniversalClient
	logger            *slog.Logger
	interval, timeout time.Duration // PING every interval, suspect after timeout

	// routes maps a channel to the handler of its messages; fallback gets
	// the messages of the channels not in routes. Handlers must not block.
	routes   map[string]func(payload string)
	fallback func(ch, payload string)

	state      func(coord.ConnState) // the subscriber connection's state changed
	gapStarted func(reason string)   // delivery may have stopped
	gapEnded   func()                // every invalidation channel confirmed again after a gap
	lateLive   func()                // a subscription handed out before it was live is confirmed
	closedErr  func() error          // the error of a call after close
}

// subscriber owns the Backend's one subscriber connection (a go-redis
// PubSub), shared by invalidation, events and lock waiters. One goroutine
// reads it with the raw Receive loop, so that it sees every confirmation,
// including those of resubscriptions after a reconnect, and hands messages
// to the handlers of its registry, which queue them without ever
// blocking.
type subscriber struct {
	cfg subscriberConfig

	cmdMu sync.Mutex // orders SUBSCRIBE/UNSUBSCRIBE decisions and commands

	mu       sync.Mutex
	ps       *goredis.PubSub
	chans    map[string]*chanState
	counts   map[string]*chanCount
	awaiting map[string]bool // invalidation channels to re-confirm after a gap
	leaving  map[string]int  // UNSUBSCRIBEs sent and not yet confirmed, by channel
	inGap    bool
	closed   bool
	cancel   context.CancelFunc
	loopDone chan struct{}

	pong chan struct{} // buffered 1: a PONG arrived, for health
	seen atomic.Uint64 // replies read, for health
}

// newSubscriber returns b's subscriber, wired to its invalidator, event
// bus and locker.
func newSubscriber(b *Backend) *subscriber {
	k := &b.keys
	return newSubscriberWith(subscriberConfig{
		client:   b.client,
		logger:   b.opts.Logger,
		interval: b.opts.HealthInterval,
		timeout:  b.opts.PingTimeout,
		routes: map[string]func(string){
			k.chInvalidate: func(p string) { b.inv.deliver(p, false) },
			k.chPattern:    func(p string) { b.inv.deliver(p, true) },
			k.chEvent:      b.events.deliver,
		},
		fallback: func(ch, p string) {
			if k.isWakeChannel(ch) {
				b.locker.remoteWake(ch, p)
			} else {
				b.locker.leases.message(ch, p)
			}
		},
		state:      b.setSubState,
		gapStarted: b.inv.gapAll,
		gapEnded: func() {
			b.inv.purgeAll(coord.ReasonReconnect)
			b.locker.wakeAll()
			b.locker.leases.gap()
		},
		lateLive:  func() { b.inv.purgeAll(coord.ReasonReconnect) },
		closedErr: b.checkOpenOr,
	})
}

func newSubscriberWith(cfg subscriberConfig) *subscriber {
	return &subscriber{
		cfg:      cfg,
		chans:    map[string]*chanState{},
		counts:   map[string]*chanCount{},
		awaiting: map[string]bool{},
		leaving:  map[string]int{},
		pong:     make(chan struct{}, 1),
	}
}

// acquire subscribes to ch (or adds a reference to the subscription) and
// returns a channel closed once the server has confirmed it.
func (s *subscriber) acquire(ctx context.Context, ch string, kind chanKind) (<-chan struct{}, error) {
	s.cmdMu.Lock()
	defer s.cmdMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, s.cfg.closedErr()
	}
	if st := s.chans[ch]; st != nil {
		st.refs++
		s.mu.Unlock()
		return st.ready, nil
	}
	c := s.counts[ch]
	if c == nil {
		c = &chanCount{}
		s.counts[ch] = c
	}
	c.sent++
	st := &chanState{kind: kind, refs: 1, ready: make(chan struct{}), seq: c.sent}
	s.chans[ch] = st
	ps := s.startLocked()
	s.mu.Unlock()
	// An error leaves the channel in the PubSub's set: it is subscribed
	// when the connection comes back, and confirmed then.
	if err := ps.Subscribe(context.WithoutCancel(ctx), ch); err != nil {
		s.cfg.logger.Warn("coord/redis: subscribe failed; will subscribe on reconnect", "err", err)
	}
	return st.ready, nil
}

// purgeWhenConfirmed marks ch, not yet confirmed, so that invalidation
// subscribers purge once it is: they may have missed invalidations until
// then. gap, told of the gap first, is the subscription that found it
// not confirmed.
func (s *subscriber) purgeWhenConfirmed(ch string, gap interface{ Gap(string) }) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.chans[ch]; st != nil && !st.confirmed {
		gap.Gap(coord.ReasonReconnect)
		st.purge = true
	}
}

// gapIfOpen tells gap of the gap in progress, if one is: the PurgeAll that
// ends it comes after.
func (s *subscriber) gapIfOpen(gap interface{ Gap(string) }) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inGap {
		gap.Gap("disconnected")
	}
}

// release drops a reference to ch and unsubscribes when it was the last.
func (s *subscriber) release(ch string) {
	s.cmdMu.Lock()
	defer s.cmdMu.Unlock()
	s.mu.Lock()
	st := s.chans[ch]
	if st == nil {
		s.mu.Unlock()
		return
	}
	st.refs--
	if st.refs > 0 {
		s.mu.Unlock()
		return
	}
	delete(s.chans, ch)
	delete(s.awaiting, ch)
	if c := s.counts[ch]; c != nil && c.acked >= c.sent {
		// Every SUBSCRIBE confirmed: nothing left to count. (Otherwise
		// confirm deletes it once the last confirmation arrives.)
		delete(s.counts, ch)
	}
	ps, closed := s.ps, s.closed
	if ps != nil && !closed {
		s.leaving[ch]++
	}
	s.mu.Unlock()
	if ps == nil || closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ps.Unsubscribe(ctx, ch)
}

// startLocked creates the PubSub and starts the receive loop on first
// use. It returns the PubSub. s.mu is held.
func (s *subscriber) startLocked() *goredis.PubSub {
	if s.ps != nil {
		return s.ps
	}
	s.ps = s.cfg.client.Subscribe(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.loopDone = make(chan struct{})
	go s.loop(ctx)
	return s.ps
}

func (s *subscriber) current() *goredis.PubSub {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ps
}

// close closes the subscriber connection and waits for the receive loop.
func (s *subscriber) close() {
	s.mu.Lock()
	s.closed = true
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel() // ends a replace waiting on the server, which holds cmdMu
	}
	s.cmdMu.Lock()
	s.mu.Lock()
	ps, done := s.ps, s.loopDone
	s.mu.Unlock()
	s.cmdMu.Unlock()
	if ps == nil {
		return
	}
	_ = ps.Close()
	<-done
}

// loop reads the subscriber connection until close, without a read
// deadline (see health for silent connections).
func (s *subscriber) loop(ctx context.Context) {
	defer close(s.loopDone)
	healthDone := make(chan struct{})
	go s.health(ctx, healthDone)
	defer func() { <-healthDone }()
	backoff := time.Duration(0)
	for {
		ps := s.current()
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if errors.Is(err, goredis.ErrClosed) && s.current() != ps {
				continue // replaced by health
			}
			s.startGap("disconnected")
			s.cfg.state(coord.Reconnecting)
			backoff = min(max(2*backoff, 25*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		s.seen.Add(1)
		s.cfg.state(coord.Connected)
		switch m := msg.(type) {
		case *goredis.Subscription:
			switch m.Kind {
			case "subscribe":
				s.confirm(m.Channel)
			case "unsubscribe":
				s.unsubscribed(m.Channel)
			}
		case *goredis.Message:
			s.dispatch(m)
		case *goredis.Pong:
			select {
			case s.pong <- struct{}{}:
			default:
			}
		}
	}
}

// health pings the subscriber connection every health interval and, when
// neither the PONG nor anything else arrives within the ping timeout (a
// server that stopped answering, or a connection silently lost), starts a
// gap and replaces the connection. A silent outage is noticed within the
// interval plus the timeout.
func (s *subscriber) health(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	interval, timeout := s.cfg.interval, s.cfg.timeout
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select {
		case <-s.pong: // an answer to an earlier PING
		default:
		}
		ps := s.current()
		seen := s.seen.Load()
		deadline := time.Now().Add(timeout)
		pctx, cancel := context.WithDeadline(ctx, deadline)
		err := ps.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// The connection failed: the receive loop reconnects.
			s.startGap("disconnected")
			t.Reset(interval)
			continue
		}
		t.Reset(time.Until(deadline))
		select {
		case <-ctx.Done():
			return
		case <-s.pong:
			t.Stop()
			t.Reset(interval)
			continue
		case <-t.C:
		}
		if s.seen.Load() != seen {
			// No PONG yet, but the connection delivers: a backlog of
			// messages ahead of it, not a silent connection.
			t.Reset(interval)
			continue
		}
		if s.current() == ps {
			s.cfg.logger.Warn("coord/redis: subscriber connection did not answer a PING; reconnecting", "timeout", timeout)
			s.cfg.state(coord.Reconnecting)
			s.replace(ctx)
		}
		t.Reset(interval)
	}
}

// replace closes the PubSub and opens a new one on every channel, as the
// resubscription after a reconnect.
func (s *subscriber) replace(ctx context.Context) {
	s.cmdMu.Lock()
	defer s.cmdMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	old := s.ps
	chans := make([]string, 0, len(s.chans))
	for ch := range s.chans {
		chans = append(chans, ch)
	}
	s.ps = s.cfg.client.Subscribe(context.Background())
	ps := s.ps
	s.startGapLocked("silent")
	s.mu.Unlock()
	_ = old.Close()
	if len(chans) > 0 {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = ps.Subscribe(sctx, chans...)
		cancel()
	}
}

// startGap notes that delivery may have had a gap: invalidation
// subscribers that asked for it are told at once (reason says why), and
// every invalidation subscriber is told to purge once the invalidation
// channels are confirmed again.
func (s *subscriber) startGap(reason string) {
	s.mu.Lock()
	s.startGapLocked(reason)
	s.mu.Unlock()
}

// startGapLocked is startGap with s.mu held. The queues it pushes the
// GapStart to take only their own locks.
func (s *subscriber) startGapLocked(reason string) {
	s.cfg.gapStarted(reason)
	s.inGap = true
	clear(s.leaving) // a new connection is not subscribed to them
	for ch, st := range s.chans {
		if st.kind == kindInvalidate || st.kind == kindPattern {
			s.awaiting[ch] = true
		}
	}
}

// unsubscribed handles the server's confirmation of an UNSUBSCRIBE of ch.
func (s *subscriber) unsubscribed(ch string) {
	s.mu.Lock()
	if n := s.leaving[ch]; n > 1 {
		s.leaving[ch] = n - 1
	} else {
		delete(s.leaving, ch)
	}
	s.mu.Unlock()
}

// hears reports whether this connection may receive a message published
// on ch now: it is subscribed, subscribing, or its UNSUBSCRIBE is not
// confirmed yet.
func (s *subscriber) hears(ch string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chans[ch] != nil || s.leaving[ch] > 0
}

// ownArg is hears(ch) as a script argument: how many of ch's subscribers
// are this instance's.
func (s *subscriber) ownArg(ch string) string {
	if s.hears(ch) {
		return "1"
	}
	return "0"
}

// confirm handles the server's confirmation of a subscription to ch.
func (s *subscriber) confirm(ch string) {
	s.mu.Lock()
	c := s.counts[ch]
	if c == nil {
		c = &chanCount{}
		s.counts[ch] = c
	}
	c.acked++
	resub := false
	if c.acked > c.sent {
		c.acked = c.sent
		resub = true
	}
	st := s.chans[ch]
	latePurge := false
	if st != nil && !st.confirmed && c.acked >= st.seq {
		st.confirmed = true
		close(st.ready)
		latePurge, st.purge = st.purge, false
	}
	if st == nil && c.acked >= c.sent {
		delete(s.counts, ch)
	}
	purge := false
	if resub && !s.inGap {
		// A reconnect we did not see fail (go-redis reconnected while
		// writing a command): the gap starts now.
		s.startGapLocked("disconnected")
	}
	if s.inGap && (resub || s.awaiting[ch]) {
		// Subscribed on the new connection. Once every invalidation
		// channel is, the gap is over.
		delete(s.awaiting, ch)
		if len(s.awaiting) == 0 {
			s.inGap = false
			purge = true
		}
	}
	s.mu.Unlock()
	if purge {
		s.cfg.logger.Info("coord/redis: subscriber resubscribed after a gap; purging invalidation subscribers")
		s.cfg.gapEnded()
	} else if latePurge {
		s.cfg.lateLive()
	}
}

// dispatch hands a message to the handler its channel is registered
// with. It never blocks.
func (s *subscriber) dispatch(m *goredis.Message) {
	if fn := s.cfg.routes[m.Channel]; fn != nil {
		fn(m.Payload)
		return
	}
	s.cfg.fallback(m.Channel, m.Payload)
}

// waitReady waits until ready is closed, ctx ends, the backend closes, or
// max passes. It reports whether ready was closed.
func (b *Backend) waitReady(ctx context.Context, ready <-chan struct{}, max time.Duration) bool {
	select {
	case <-ready:
		return true
	default:
	}
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-ready:
		return true
	case <-ctx.Done():
	case <-b.closing:
	case <-t.C:
	}
	return false
}

// checkOpenOr returns the error of a subscriber that was closed, which
// happens only when the Backend closes.
func (b *Backend) checkOpenOr() error {
	return fmt.Errorf("%w: coord/redis", coord.ErrClosed)
}

// publish sends msg on ch. In a Cluster it always publishes on one node,
// the master of the slot of the invalidation channel's name (go-redis
// would pick a random node for a command without keys), so that the
// messages of one publisher reach subscribers in the order they were sent,
// across channels too.
func (b *Backend) publish(ctx context.Context, ch string, msg []byte) error {
	if cc, ok := b.client.(*goredis.ClusterClient); ok {
		node, err := cc.MasterForKey(ctx, b.keys.chInvalidate)
		if err != nil {
			return err
		}
		return node.Publish(ctx, ch, msg).Err()
	}
	return b.client.Publish(ctx, ch, msg).Err()
}
