package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/internal/subq"
)

// Backend is one instance's view of coord on Redis: leases, sessions,
// invalidation and events, over one go-redis client (single node, Sentinel
// or Cluster) and one subscriber connection. A Backend is safe for
// concurrent use by multiple goroutines.
type Backend struct {
	client goredis.UniversalClient
	opts   resolved
	keys   keyspace
	sc     *scripts
	batch  *batcher // runs the lease scripts of concurrent callers together
	idArg  any      // the instance ID, boxed once for script arguments
	holder string   // "." + the instance ID: what a lease value ends with

	handoffMs any // the handoff window in milliseconds, for the release script

	closed    atomic.Bool
	closing   chan struct{} // closed when Close starts
	closeOnce sync.Once
	closeDone chan struct{} // closed when Close finished
	closeErr  error

	stMu     sync.Mutex
	connSt   coord.ConnState
	connFast atomic.Value // connSt, read without stMu
	subFast  atomic.Value // subSt, read without stMu
	subSt    coord.ConnState
	subInUse bool

	locker   *Locker
	sessions *Sessions
	inv      *Invalidator
	events   *Events
	rates    *RateLimiter
	sub      *subscriber
	budget   *subq.Budget // bytes queued for the subscriptions
	st       streamState  // the Streams, made on first use (streams.go)
}

var (
	_ coord.Backend        = (*Backend)(nil)
	_ coord.Aser           = (*Backend)(nil)
	_ driver.StateReporter = (*Backend)(nil)
	_ coord.Locker         = (*Locker)(nil)
	_ coord.SessionStore   = (*Sessions)(nil)
	_ coord.Invalidator    = (*Invalidator)(nil)
	_ coord.EventBus       = (*Events)(nil)
)

// New returns a Backend on client. A nil opts means every default. New
// does no I/O (see [Connect] to wait for the server at start-up); the
// Backend never closes client. The error wraps [coord.ErrInvalid] for bad
// options.
func New(client goredis.UniversalClient, opts *Options) (*Backend, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: coord/redis: nil client", coord.ErrInvalid)
	}
	r, err := resolve(opts)
	if err != nil {
		return nil, err
	}
	b := &Backend{
		client:    client,
		opts:      r,
		keys:      newKeyspace(r.Prefix),
		sc:        loadScripts(),
		batch:     &batcher{client: client, max: maxBatches},
		closing:   make(chan struct{}),
		closeDone: make(chan struct{}),
		connSt:    coord.Disconnected,
		subSt:     coord.Disconnected,
	}
	b.budget = subq.NewBudget(r.QueueBytes)
	b.idArg = r.InstanceID
	b.holder = "." + r.InstanceID
	b.handoffMs = max(r.HandoffWindow.Milliseconds(), 0)
	b.locker = newLocker(b)
	b.sessions = &Sessions{b: b}
	b.inv = newInvalidator(b)
	b.events = newEvents(b)
	b.rates = newRateLimiter(b)
	b.sub = newSubscriber(b)
	return b, nil
}

// Locker returns the leases of this instance.
func (b *Backend) Locker() coord.Locker { return b.locker }

// Sessions returns the shared session store.
func (b *Backend) Sessions() coord.SessionStore { return b.sessions }

// Invalidator returns cross-instance cache invalidation.
func (b *Backend) Invalidator() coord.Invalidator { return b.inv }

// Events returns the event bus between instances.
func (b *Backend) Events() coord.EventBus { return b.events }

// InstanceID returns this instance's ID.
func (b *Backend) InstanceID() string { return b.opts.InstanceID }

// Client returns the go-redis client the Backend was made with.
func (b *Backend) Client() goredis.UniversalClient { return b.client }

// As fills target when it is a *goredis.UniversalClient (the client the
// Backend was made with) or a **Backend, and reports whether it did.
func (b *Backend) As(target any) bool {
	switch t := target.(type) {
	case *goredis.UniversalClient:
		*t = b.client
		return true
	case **Backend:
		*t = b
		return true
	}
	return false
}

// State returns the state of the command connection: connected after a
// command succeeded, reconnecting after one failed on the connection, and
// disconnected before the first command and after Close.
func (b *Backend) State() coord.ConnState {
	b.stMu.Lock()
	defer b.stMu.Unlock()
	return b.connSt
}

// SubscriberState returns the state of the subscriber connection. Before
// anything subscribed it is the state of the command connection.
func (b *Backend) SubscriberState() coord.ConnState {
	b.stMu.Lock()
	defer b.stMu.Unlock()
	if !b.subInUse {
		return b.connSt
	}
	return b.subSt
}

func (b *Backend) setConnState(s coord.ConnState) {
	if v, _ := b.connFast.Load().(coord.ConnState); v == s {
		return
	}
	b.stMu.Lock()
	old := b.connSt
	if b.closed.Load() {
		s = coord.Disconnected
	}
	b.connSt = s
	b.connFast.Store(s)
	b.stMu.Unlock()
	if old == s {
		return
	}
	switch {
	case s == coord.Reconnecting:
		b.opts.Logger.Warn("coord/redis: command connection lost; reconnecting", "state", string(s), "from", string(old))
	case s == coord.Connected && old == coord.Reconnecting:
		b.opts.Logger.Info("coord/redis: command connection restored", "state", string(s), "from", string(old))
	}
	if b.opts.OnStateChange != nil {
		b.opts.OnStateChange(StateChange{From: old, To: s})
	}
}

func (b *Backend) setSubState(s coord.ConnState) {
	if v, _ := b.subFast.Load().(coord.ConnState); v == s {
		return
	}
	b.stMu.Lock()
	old := b.subSt
	b.subSt = s
	b.subFast.Store(s)
	b.subInUse = true
	b.stMu.Unlock()
	if old != s {
		if s != coord.Connected {
			b.opts.Logger.Warn("coord/redis: subscriber connection "+string(s), "state", string(s), "from", string(old))
		}
		if b.opts.OnStateChange != nil {
			b.opts.OnStateChange(StateChange{Subscriber: true, From: old, To: s})
		}
	}
}

// checkOpen returns an error wrapping coord.ErrClosed after Close.
func (b *Backend) checkOpen() error {
	if b.closed.Load() {
		return fmt.Errorf("%w: coord/redis", coord.ErrClosed)
	}
	return nil
}

// fail translates the error of a Redis call made for op and records the
// connection state. A nil err records a success.
func (b *Backend) fail(ctx context.Context, op string, err error) error {
	if err == nil {
		b.setConnState(coord.Connected)
		return nil
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return fmt.Errorf("coord/redis: %s: %w", op, err)
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		// The server answered: the connection is fine.
		b.setConnState(coord.Connected)
	} else {
		b.setConnState(coord.Reconnecting)
	}
	return fmt.Errorf("%w: coord/redis: %s: %w", coord.ErrUnavailable, op, err)
}

// Health pings the server and reports the state of both connections, the
// messages received and the number of live sessions. It is degraded while
// the server refuses writes for lack of memory (maxmemory reached under
// noeviction; releases still work then), while the subscriber connection
// reconnects, or when the PING is slow.
func (b *Backend) Health(ctx context.Context) coord.Health {
	h := coord.Health{Backend: "redis", Sessions: -1}
	h.MessagesReceived = b.inv.received.Load() + b.events.received.Load()
	if b.closed.Load() {
		h.Status = coord.Unhealthy
		h.Connection, h.Subscriber = coord.Disconnected, coord.Disconnected
		h.Error = "coord/redis: closed"
		return h
	}
	start := time.Now()
	err := b.fail(ctx, "ping", b.client.Ping(ctx).Err())
	h.Latency = time.Since(start)
	h.Connection = b.State()
	h.Subscriber = b.SubscriberState()
	if err != nil {
		h.Status = coord.Unhealthy
		h.Error = err.Error()
		return h
	}
	if n, err := b.sessions.Count(ctx); err == nil {
		h.Sessions = n
	}
	h.Status = coord.Healthy
	refused := b.writesRefused(ctx)
	switch {
	case refused != "":
		h.Status = coord.Degraded
		h.Error = "coord/redis: the server refuses writes: " + refused
	case h.Subscriber != coord.Connected:
		h.Status = coord.Degraded
		h.Error = "coord/redis: subscriber connection " + string(h.Subscriber)
	case h.Latency > b.opts.DegradedLatency:
		h.Status = coord.Degraded
		h.Error = fmt.Sprintf("coord/redis: PING took %v, over %v", h.Latency, b.opts.DegradedLatency)
	}
	return h
}

// Close releases the leases this instance holds, ends its subscriptions,
// closes its subscriber connection and waits for running handlers. It
// never closes the client given to [New]. Close returns by ctx's
// deadline: if a handler is still running then, Close returns ctx's
// error having released everything else; the handler's goroutine is
// abandoned and exits when the handler returns. Close is idempotent: a
// second call waits for the first and returns nil.
func (b *Backend) Close(ctx context.Context) error {
	first := false
	b.closeOnce.Do(func() {
		first = true
		b.closed.Store(true)
		close(b.closing)
		b.closeErr = b.shutdown(ctx)
		b.setConnState(coord.Disconnected)
		b.stMu.Lock()
		b.subSt = coord.Disconnected
		b.subFast.Store(coord.Disconnected)
		b.stMu.Unlock()
		close(b.closeDone)
	})
	if !first {
		select {
		case <-b.closeDone:
		case <-ctx.Done():
			return fmt.Errorf("coord/redis: close: %w", ctx.Err())
		}
		return nil
	}
	return b.closeErr
}

func (b *Backend) shutdown(ctx context.Context) error {
	var errs []error
	errs = append(errs, b.locker.shutdown(ctx))
	errs = append(errs, b.st.shutdown(ctx))
	b.inv.stop()
	b.events.stop()
	b.sub.close()
	if err := subq.Wait(ctx, &b.inv.wg); err != nil {
		errs = append(errs, fmt.Errorf("coord/redis: close: waiting for invalidation handlers: %w", err))
	} else if err := subq.Wait(ctx, &b.events.wg); err != nil {
		errs = append(errs, fmt.Errorf("coord/redis: close: waiting for event handlers: %w", err))
	}
	return errors.Join(errs...)
}

// ms formats d in whole milliseconds, as scripts take them.
func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
