package backend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/driver"
	"github.com/cgn-bot/coord/middleware/logging"
	"github.com/cgn-bot/coord/middleware/metrics"
)

// URL schemes understood by [Opener.Open].
const (
	// SchemeMemory opens an in-process backend: mem://name.
	SchemeMemory = "mem"
	// SchemeRedis opens a Redis backend: redis://[user:password@]host[:port][/db].
	SchemeRedis = "redis"
	// SchemeRedisTLS opens a Redis backend over TLS: rediss://...
	SchemeRedisTLS = "rediss"
)

// DefaultMemoryName is the hub name of a memory backend opened from
// "mem://" with no name, and by [Opener.FromEnv] when no Redis is
// configured.
const DefaultMemoryName = "default"

// Config says which backend to open and how to wire it. The zero Config
// opens a memory backend on the hub [DefaultMemoryName], with no
// middleware.
type Config struct {
	// URL names the backend: "mem://name", "redis://..." or "rediss://...".
	// Empty means "mem://" + [DefaultMemoryName] (single-instance mode).
	// See the package documentation for the query parameters.
	// Default: "".
	URL string

	// FallbackToMemory makes a Redis that cannot be reached at start-up
	// open a memory backend instead of failing. The fallback is logged at
	// [slog.LevelError] and, for as long as the backend lives, its Health
	// reports [coord.Degraded] with the reason and the Redis connections
	// as disconnected (so does the redis_connection_state metric): leases
	// on a memory backend are not shared with other instances. Default:
	// false (an unreachable Redis is an error).
	FallbackToMemory bool

	// Redis configures the Redis backend (key prefix, instance ID, lock
	// and session defaults). The URL's prefix and instance parameters
	// override its fields. Default: nil (every default).
	Redis *coordredis.Options

	// TLSConfig, when set, is the TLS configuration of a rediss:// client
	// (for example to trust a private CA). Default: nil (the system roots,
	// with the URL's host as server name).
	TLSConfig *tls.Config

	// Memory configures a memory hub when the Opener creates it (the
	// first open of a name). Default: nil (every default).
	Memory *memory.HubOptions

	// Registerer, when set, wraps the backend in the metrics middleware
	// registered there ([metrics.New]). Default: nil (no metrics).
	Registerer prometheus.Registerer

	// Metrics configures the metrics middleware. Default: nil (its
	// defaults).
	Metrics *metrics.Options

	// Logger, when set, wraps the backend in the logging middleware
	// ([logging.New]) and receives everything else coord logs: the
	// connection retries at start-up, the choice or fallback of the
	// memory backend, and the Redis backend's own records (reconnects,
	// renewals, subscriber state; see docs/LOGGING.md), unless
	// Redis.Logger names another logger for those. When nil, no operation
	// is logged and the rest goes to [slog.Default], so that an outage
	// is never silent. go-redis's own log lines are not routed by it: see
	// [coordredis.SlogLogger]. Default: nil.
	Logger *slog.Logger

	// Logging configures the logging middleware. Default: nil (its
	// defaults).
	Logging *logging.Options

	// Getenv reads the environment for [Opener.FromEnv].
	// Default: [os.Getenv].
	Getenv func(string) string
}

// Opener opens backends and keeps the memory hubs it created, so that
// every backend it opens from the same "mem://name" is an instance on the
// same hub. The zero Opener is ready to use. An Opener is safe for
// concurrent use by multiple goroutines; a nil *Opener opens each memory
// backend on a hub of its own.
type Opener struct {
	mu   sync.Mutex
	hubs map[string]*memory.Hub
}

// Hub returns the memory hub named name, creating it with opts (which may
// be nil) if the Opener has none by that name yet.
func (o *Opener) Hub(name string, opts *memory.HubOptions) *memory.Hub {
	if o == nil {
		return memory.NewHub(opts)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if h, ok := o.hubs[name]; ok {
		return h
	}
	if o.hubs == nil {
		o.hubs = make(map[string]*memory.Hub)
	}
	h := memory.NewHub(opts)
	o.hubs[name] = h
	return h
}

// Open opens the backend that cfg names, as [Opener.Open] does, with each
// memory backend on a hub of its own: the common case of one backend per
// process. Use an [Opener] when several memory backends must share a hub.
func Open(ctx context.Context, cfg Config) (*Opened, error) {
	return (*Opener)(nil).Open(ctx, cfg)
}

// FromEnv opens the backend the environment names, as [Opener.FromEnv]
// does, with a memory backend on a hub of its own. Use an [Opener] when
// several memory backends must share a hub.
func FromEnv(ctx context.Context, cfg Config) (*Opened, error) {
	return (*Opener)(nil).FromEnv(ctx, cfg)
}

// Open opens the backend cfg.URL names, waits for Redis to answer (see
// [coordredis.Connect]; ctx bounds the wait) and wraps it in the
// middleware cfg asks for. A Redis that cannot be reached is an error
// wrapping [coord.ErrUnavailable], unless cfg.FallbackToMemory is set.
// A malformed URL, an unknown scheme or an unknown query parameter is an
// error wrapping [coord.ErrInvalid], found before any I/O. The caller
// closes the result.
func (o *Opener) Open(ctx context.Context, cfg Config) (*Opened, error) {
	t, err := parseTarget(cfg.URL, cfg.Redis)
	if err != nil {
		return nil, err
	}
	return o.open(ctx, cfg, t)
}

// FromEnv opens the backend the environment names, read as the Node
// fleet reads it (docs/WIRE.md): Redis from REDIS_URL, else from REDIS_HOST, REDIS_PORT,
// REDIS_PASSWORD and REDIS_DB (see [coordredis.FromLookup]); memory when
// none is set, or when ENABLE_DISTRIBUTED_CACHE is false. cfg.URL must be
// empty. The rest of cfg applies as in [Opener.Open].
func (o *Opener) FromEnv(ctx context.Context, cfg Config) (*Opened, error) {
	if cfg.URL != "" {
		return nil, fmt.Errorf("%w: backend: FromEnv with a URL in Config", coord.ErrInvalid)
	}
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	memTarget := &target{memory: true, name: DefaultMemoryName}
	if v := strings.TrimSpace(getenv("ENABLE_DISTRIBUTED_CACHE")); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%w: backend: ENABLE_DISTRIBUTED_CACHE %q is not true or false", coord.ErrInvalid, v)
		}
		if !on {
			if set := redisVar(getenv); set != "" {
				// Redis is configured but switched off: every instance
				// runs alone, which is worth a warning and a degraded
				// Health, as for a fallback.
				reason := "ENABLE_DISTRIBUTED_CACHE is false while " + set + " is set: running on memory: locks, sessions and invalidations are NOT shared with other instances"
				logOf(cfg).LogAttrs(ctx, slog.LevelWarn, "coord: distributed mode disabled; running on the memory backend",
					slog.String("reason", reason))
				return o.openMemory(cfg, DefaultMemoryName, nil, reason)
			}
			logChoice(ctx, cfg, "ENABLE_DISTRIBUTED_CACHE is false")
			return o.open(ctx, cfg, memTarget)
		}
	}
	if u := getenv("REDIS_URL"); u != "" {
		t, err := parseTarget(u, cfg.Redis)
		if err != nil {
			return nil, err
		}
		if t.memory {
			return nil, fmt.Errorf("%w: backend: REDIS_URL is not a redis:// or rediss:// URL", coord.ErrInvalid)
		}
		// The rest of the environment (REDIS_TLS_CA_FILE) is read where
		// every other Redis variable is, with coord's own parameters
		// taken out of the URL.
		t.gopts, err = coordredis.FromLookup(func(k string) string {
			if k == "REDIS_URL" {
				return t.clientURL
			}
			return getenv(k)
		})
		if err != nil {
			return nil, err
		}
		return o.open(ctx, cfg, t)
	}
	gopts, err := coordredis.FromLookup(getenv)
	if errors.Is(err, coordredis.ErrNotConfigured) {
		logChoice(ctx, cfg, "neither REDIS_URL nor REDIS_HOST is set")
		return o.open(ctx, cfg, memTarget)
	}
	if err != nil {
		return nil, err
	}
	t := &target{gopts: gopts, where: "redis://" + gopts.Addr}
	if cfg.Redis != nil {
		t.ropts = *cfg.Redis
	}
	return o.open(ctx, cfg, t)
}

// redisVar returns the name of the first environment variable that
// configures a Redis (REDIS_URL, REDIS_HOST) and is set, or "".
func redisVar(getenv func(string) string) string {
	for _, k := range [...]string{"REDIS_URL", "REDIS_HOST"} {
		if strings.TrimSpace(getenv(k)) != "" {
			return k
		}
	}
	return ""
}

// logOf returns the logger of everything coord logs outside the logging
// middleware: cfg.Logger, else [slog.Default].
func logOf(cfg Config) *slog.Logger {
	if cfg.Logger != nil {
		return cfg.Logger
	}
	return slog.Default()
}

// logChoice logs, at info level on cfg.Logger, that the environment
// selected the single-instance memory backend, and why.
func logChoice(ctx context.Context, cfg Config, why string) {
	if cfg.Logger != nil {
		cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "coord: single-instance mode on the memory backend", slog.String("reason", why))
	}
}

// target is the backend a URL names, parsed and checked without I/O.
type target struct {
	memory bool
	name   string // memory: the hub's name
	node   memory.Options

	gopts *goredis.Options   // redis: the client's options
	ropts coordredis.Options // redis: the backend's options
	where string             // redis: the server, for messages (no password)
	// clientURL is the Redis URL without coord's own parameters.
	clientURL string
}

// ownParams are the query parameters of a Redis URL that coord reads;
// every other one goes to go-redis, which refuses the ones it does not
// know.
var ownParams = [...]string{"prefix", "instance"}

// parseTarget parses a backend URL ("" means the default memory hub) over
// the Redis options base (may be nil). Every error wraps
// [coord.ErrInvalid] and none contains a password.
func parseTarget(raw string, base *coordredis.Options) (*target, error) {
	if raw == "" {
		return &target{memory: true, name: DefaultMemoryName}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the URL, password included: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: backend: malformed URL: %v", coord.ErrInvalid, redactErr(err, raw))
	}
	switch u.Scheme {
	case SchemeMemory:
		return parseMemory(u)
	case SchemeRedis, SchemeRedisTLS:
		return parseRedis(u, base)
	}
	return nil, fmt.Errorf("%w: backend: unknown URL scheme %q (want mem, redis or rediss)", coord.ErrInvalid, u.Scheme)
}

// redactErr returns err's message without the password of raw, if raw
// has one that can be found.
func redactErr(err error, raw string) string {
	msg := err.Error()
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			userinfo := rest[:at]
			if c := strings.Index(userinfo, ":"); c >= 0 && c+1 < len(userinfo) {
				msg = strings.ReplaceAll(msg, userinfo[c+1:], "[redacted]")
			}
		}
	}
	return msg
}

// parseMemory checks a mem:// URL.
func parseMemory(u *url.URL) (*target, error) {
	if u.User != nil || u.Port() != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: backend: memory URL must be mem://name[?instance=ID]", coord.ErrInvalid)
	}
	t := &target{memory: true, name: u.Host}
	if t.name == "" {
		t.name = DefaultMemoryName
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: backend: memory URL query: %v", coord.ErrInvalid, err)
	}
	for k, vs := range q {
		switch k {
		case "instance":
			t.node.InstanceID = vs[len(vs)-1]
			if err := driver.ValidateName("instance ID", t.node.InstanceID); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: backend: unknown parameter %q in a memory URL", coord.ErrInvalid, k)
		}
	}
	return t, nil
}

// parseRedis checks a redis:// or rediss:// URL and the backend options
// it gives.
func parseRedis(u *url.URL, base *coordredis.Options) (*target, error) {
	t := &target{where: u.Redacted()}
	if base != nil {
		t.ropts = *base
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: backend: Redis URL query: %v", coord.ErrInvalid, err)
	}
	if v := q.Get("prefix"); v != "" {
		t.ropts.Prefix = v
	}
	if v := q.Get("instance"); v != "" {
		t.ropts.InstanceID = v
	}
	for _, p := range ownParams {
		q.Del(p)
	}
	clean := *u
	clean.RawQuery = q.Encode()
	t.clientURL = clean.String()
	t.gopts, err = coordredis.ParseURL(t.clientURL)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// open opens what t names.
func (o *Opener) open(ctx context.Context, cfg Config, t *target) (*Opened, error) {
	if t.memory {
		return o.openMemory(cfg, t.name, &t.node, "")
	}
	return o.connectRedis(ctx, cfg, t)
}

// openMemory opens a node on the hub called name. reason, when set, is
// why a Redis backend fell back to memory.
func (o *Opener) openMemory(cfg Config, name string, node *memory.Options, reason string) (*Opened, error) {
	return wrap(cfg, o.Hub(name, cfg.Memory).New(node), "memory", reason, nil)
}

// connectRedis makes a client for t, opens the backend on it (which
// checks the options without I/O), waits for the server, or falls back
// to memory when cfg allows it.
func (o *Opener) connectRedis(ctx context.Context, cfg Config, t *target) (*Opened, error) {
	gopts := *t.gopts
	if cfg.TLSConfig != nil && gopts.TLSConfig != nil {
		gopts.TLSConfig = cfg.TLSConfig.Clone()
	}
	logger := logOf(cfg)
	ropts := t.ropts
	if ropts.Logger == nil {
		ropts.Logger = logger
	}
	client := goredis.NewClient(&gopts)
	b, err := coordredis.New(client, &ropts)
	if err != nil {
		return nil, errors.Join(err, client.Close())
	}
	if err := coordredis.Connect(ctx, client, coordredis.ConnectLogger(logger)); err != nil {
		cerr := errors.Join(b.Close(context.WithoutCancel(ctx)), client.Close())
		if !cfg.FallbackToMemory {
			return nil, fmt.Errorf("backend: Redis at %s: %w", t.where, errors.Join(err, cerr))
		}
		reason := fmt.Sprintf("Redis at %s unreachable, running on memory: locks, sessions and invalidations are NOT shared with other instances: %v", t.where, err)
		logger.LogAttrs(ctx, slog.LevelError, "coord: falling back to the memory backend",
			slog.String("redis", t.where), slog.String("error", err.Error()))
		return o.openMemory(cfg, DefaultMemoryName, nil, reason)
	}
	return wrap(cfg, b, "redis", "", client)
}

// wrap decorates base with the middleware cfg asks for. On error it
// closes base and client.
func wrap(cfg Config, base coord.Backend, kind, reason string, client interface{ Close() error }) (*Opened, error) {
	if reason != "" {
		// Below the middleware, so that the metrics export Redis as
		// disconnected and the logging middleware logs every Health.
		base = &fellBack{Backend: base, reason: reason}
	}
	op := &Opened{base: base, kind: kind, degraded: reason, client: client}
	b := base
	if cfg.Registerer != nil {
		m, err := metrics.New(cfg.Registerer, cfg.Metrics)
		if err != nil {
			op.Backend = base
			return nil, errors.Join(fmt.Errorf("backend: metrics: %w", err), op.Close(context.Background()))
		}
		b = m.Backend(b)
	}
	if cfg.Logger != nil {
		b = logging.New(cfg.Logger, cfg.Logging).Backend(b)
	}
	op.Backend = b
	return op, nil
}

// Opened is a backend opened by an [Opener], with its middleware. It
// implements [coord.Backend] (the embedded Backend is the decorated one)
// and owns what was opened for it: [Opened.Close] closes the backend and
// the go-redis client made for it. An Opened is safe for concurrent use
// by multiple goroutines.
type Opened struct {
	coord.Backend

	base     coord.Backend // undecorated
	kind     string
	degraded string
	client   interface{ Close() error }

	closeOnce sync.Once
	closeErr  error
}

// Kind returns "memory" or "redis": the backend in use.
func (o *Opened) Kind() string { return o.kind }

// FellBack returns why a configured Redis was replaced by memory (it was
// unreachable with FallbackToMemory set, or ENABLE_DISTRIBUTED_CACHE is
// false while Redis is configured), or "" when it was not.
func (o *Opened) FellBack() string { return o.degraded }

// Unwrap returns the decorated backend, for [coord.As].
func (o *Opened) Unwrap() coord.Backend { return o.Backend }

// As forwards to the backend (see [coord.As]): a Redis backend fills a
// *goredis.UniversalClient or a **coordredis.Backend, a memory backend a
// **memory.Hub or a **memory.Backend.
func (o *Opened) As(target any) bool { return coord.As(o.Backend, target) }

var _ driver.StateReporter = (*Opened)(nil)

// State returns the state of the backend's command connection, for the
// metrics middleware and health checks: after a fallback to memory,
// [coord.Disconnected], the state of the configured Redis.
func (o *Opened) State() coord.ConnState {
	if s, ok := o.base.(driver.StateReporter); ok {
		return s.State()
	}
	return o.base.Health(context.Background()).Connection
}

// fellBack is a memory backend standing in for an unreachable Redis. Its
// Health is at best degraded, with the reason, and reports the Redis
// connections as disconnected; State, which the metrics middleware reads
// for redis_connection_state, is disconnected.
type fellBack struct {
	coord.Backend
	reason string
}

var _ driver.StateReporter = (*fellBack)(nil)

// As forwards to the memory backend.
func (f *fellBack) As(target any) bool { return coord.As(f.Backend, target) }

// Unwrap returns the memory backend.
func (f *fellBack) Unwrap() coord.Backend { return f.Backend }

// State reports the configured Redis as disconnected.
func (f *fellBack) State() coord.ConnState { return coord.Disconnected }

// Health returns the memory backend's Health, degraded with the reason.
func (f *fellBack) Health(ctx context.Context) coord.Health {
	h := f.Backend.Health(ctx)
	h.Connection, h.Subscriber = coord.Disconnected, coord.Disconnected
	if h.Status == coord.Healthy {
		h.Status = coord.Degraded
		h.Error = f.reason
	}
	return h
}

// Close closes the backend (releasing its leases and ending its
// subscriptions) and then the go-redis client opened for it, and returns
// the errors of both joined with [errors.Join]; a failure of one step does
// not stop the next. Close is idempotent: later calls return the first
// call's result.
func (o *Opened) Close(ctx context.Context) error {
	o.closeOnce.Do(func() {
		var errs []error
		if err := o.Backend.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("backend: close %s backend: %w", o.kind, err))
		}
		if o.client != nil {
			if err := o.client.Close(); err != nil {
				errs = append(errs, fmt.Errorf("backend: close Redis client: %w", err))
			}
		}
		o.closeErr = errors.Join(errs...)
	})
	return o.closeErr
}
