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

	"github.com/hashicorp/go-multierror"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	coordredis "github.com/cgn-bot/coord/backend/redis"
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
	// ([logging.New]) and receives the fallback record. When nil, no
	// operation is logged and a fallback to memory is logged to
	// [slog.Default], so that it is never silent. Default: nil.
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

// Open opens the backend that cfg names with o (see [Opener.Open]).
// A nil o opens each memory backend on a hub of its own.
func Open(ctx context.Context, o *Opener, cfg Config) (*Opened, error) {
	return o.Open(ctx, cfg)
}

// FromEnv opens the backend the environment names with o (see
// [Opener.FromEnv]). A nil o opens each memory backend on a hub of its
// own.
func FromEnv(ctx context.Context, o *Opener, cfg Config) (*Opened, error) {
	return o.FromEnv(ctx, cfg)
}

// Open opens the backend cfg.URL names, waits for Redis to answer (see
// [coordredis.Connect]; ctx bounds the wait) and wraps it in the
// middleware cfg asks for. A Redis that cannot be reached is an error
// wrapping [coord.ErrUnavailable], unless cfg.FallbackToMemory is set.
// A malformed URL, an unknown scheme or an unknown query parameter is an
// error wrapping [coord.ErrInvalid]. The caller closes the result.
func (o *Opener) Open(ctx context.Context, cfg Config) (*Opened, error) {
	raw := cfg.URL
	if raw == "" {
		raw = SchemeMemory + "://" + DefaultMemoryName
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: backend: malformed URL: %v", coord.ErrInvalid, err)
	}
	switch u.Scheme {
	case SchemeMemory:
		return o.openMemory(cfg, u, "")
	case SchemeRedis, SchemeRedisTLS:
		return o.openRedis(ctx, cfg, u)
	}
	return nil, fmt.Errorf("%w: backend: unknown URL scheme %q (want mem, redis or rediss)", coord.ErrInvalid, u.Scheme)
}

// FromEnv opens the backend the environment names, as the Node design
// reads it: Redis from REDIS_URL, else from REDIS_HOST, REDIS_PORT,
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
	if v := strings.TrimSpace(getenv("ENABLE_DISTRIBUTED_CACHE")); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%w: backend: ENABLE_DISTRIBUTED_CACHE %q is not true or false", coord.ErrInvalid, v)
		}
		if !on {
			logChoice(ctx, cfg, "ENABLE_DISTRIBUTED_CACHE is false")
			return o.openMemory(cfg, &url.URL{Scheme: SchemeMemory, Host: DefaultMemoryName}, "")
		}
	}
	if u := getenv("REDIS_URL"); u != "" {
		parsed, err := url.Parse(u)
		if err != nil || (parsed.Scheme != SchemeRedis && parsed.Scheme != SchemeRedisTLS) {
			// Let ParseURL say what is wrong, without the password.
			_, perr := coordredis.ParseURL(u)
			if perr == nil {
				perr = fmt.Errorf("%w: backend: REDIS_URL is not a redis:// or rediss:// URL", coord.ErrInvalid)
			}
			return nil, perr
		}
		return o.openRedis(ctx, cfg, parsed)
	}
	opts, err := coordredis.FromLookup(getenv)
	if errors.Is(err, coordredis.ErrNotConfigured) {
		logChoice(ctx, cfg, "neither REDIS_URL nor REDIS_HOST is set")
		return o.openMemory(cfg, &url.URL{Scheme: SchemeMemory, Host: DefaultMemoryName}, "")
	}
	if err != nil {
		return nil, err
	}
	return o.connectRedis(ctx, cfg, opts, "redis://"+opts.Addr, cfg.Redis)
}

// logChoice logs, at info level on cfg.Logger, that the environment
// selected the single-instance memory backend, and why.
func logChoice(ctx context.Context, cfg Config, why string) {
	if cfg.Logger != nil {
		cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "coord: single-instance mode on the memory backend", slog.String("reason", why))
	}
}

// openMemory opens a node on the hub u names. reason, when set, is why a
// Redis backend fell back to memory.
func (o *Opener) openMemory(cfg Config, u *url.URL, reason string) (*Opened, error) {
	if u.User != nil || u.Port() != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: backend: memory URL must be mem://name[?instance=ID]", coord.ErrInvalid)
	}
	var nodeOpts memory.NodeOptions
	for k, vs := range u.Query() {
		switch k {
		case "instance":
			nodeOpts.InstanceID = vs[len(vs)-1]
			if err := coord.ValidateName("instance ID", nodeOpts.InstanceID); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: backend: unknown parameter %q in a memory URL", coord.ErrInvalid, k)
		}
	}
	name := u.Host
	if name == "" {
		name = DefaultMemoryName
	}
	node := o.Hub(name, cfg.Memory).NewNode(&nodeOpts)
	return wrap(cfg, node, "memory", reason, nil)
}

// ownParams are the query parameters of a Redis URL that coord reads;
// every other one goes to go-redis, which refuses the ones it does not
// know.
var ownParams = [...]string{"prefix", "instance"}

// openRedis opens a Redis backend on the URL u.
func (o *Opener) openRedis(ctx context.Context, cfg Config, u *url.URL) (*Opened, error) {
	var ropts coordredis.Options
	if cfg.Redis != nil {
		ropts = *cfg.Redis
	}
	q := u.Query()
	if v := q.Get("prefix"); v != "" {
		ropts.Prefix = v
	}
	if v := q.Get("instance"); v != "" {
		ropts.InstanceID = v
	}
	for _, p := range ownParams {
		q.Del(p)
	}
	clean := *u
	clean.RawQuery = q.Encode()
	gopts, err := coordredis.ParseURL(clean.String())
	if err != nil {
		return nil, err
	}
	return o.connectRedis(ctx, cfg, gopts, u.Redacted(), &ropts)
}

// connectRedis makes a client from gopts, waits for the server and opens
// the backend on it, or falls back to memory when cfg allows it. where
// names the server in messages, without the password.
func (o *Opener) connectRedis(ctx context.Context, cfg Config, gopts *goredis.Options, where string, ropts *coordredis.Options) (*Opened, error) {
	if cfg.TLSConfig != nil && gopts.TLSConfig != nil {
		gopts.TLSConfig = cfg.TLSConfig.Clone()
	}
	client := goredis.NewClient(gopts)
	if err := coordredis.Connect(ctx, client); err != nil {
		cerr := client.Close()
		if !cfg.FallbackToMemory {
			if cerr != nil {
				err = multierror.Append(err, cerr)
			}
			return nil, fmt.Errorf("backend: Redis at %s: %w", where, err)
		}
		reason := fmt.Sprintf("Redis at %s unreachable, running on memory: locks, sessions and invalidations are NOT shared with other instances: %v", where, err)
		logger := cfg.Logger
		if logger == nil {
			logger = slog.Default()
		}
		logger.LogAttrs(ctx, slog.LevelError, "coord: falling back to the memory backend",
			slog.String("redis", where), slog.String("error", err.Error()))
		return o.openMemory(cfg, &url.URL{Scheme: SchemeMemory, Host: DefaultMemoryName}, reason)
	}
	b, err := coordredis.New(client, ropts)
	if err != nil {
		if cerr := client.Close(); cerr != nil {
			err = multierror.Append(err, cerr)
		}
		return nil, err
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
			return nil, multierror.Append(fmt.Errorf("backend: metrics: %w", err), op.Close(context.Background())).ErrorOrNil()
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

// FellBack returns why a configured Redis was replaced by memory, or ""
// when it was not.
func (o *Opened) FellBack() string { return o.degraded }

// Unwrap returns the decorated backend, for [coord.As].
func (o *Opened) Unwrap() coord.Backend { return o.Backend }

// As forwards to the backend (see [coord.As]): a Redis backend fills a
// *goredis.UniversalClient or a **coordredis.Backend, a memory backend a
// **memory.Hub or a **memory.Node.
func (o *Opened) As(target any) bool { return coord.As(o.Backend, target) }

// State returns the state of the backend's command connection, for the
// metrics middleware and health checks: after a fallback to memory,
// [coord.Disconnected], the state of the configured Redis.
func (o *Opened) State() coord.ConnState {
	if s, ok := o.base.(interface{ State() coord.ConnState }); ok {
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

// As forwards to the memory backend. fellBack has no Unwrap on purpose:
// the metrics middleware follows Unwrap to the innermost backend and
// would read the memory node's state (connected) instead of State.
func (f *fellBack) As(target any) bool { return coord.As(f.Backend, target) }

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
// every error joined in a [*multierror.Error]; a failure of one step does
// not stop the next. Close is idempotent: later calls return the first
// call's result.
func (o *Opened) Close(ctx context.Context) error {
	o.closeOnce.Do(func() {
		var errs *multierror.Error
		if err := o.Backend.Close(ctx); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("backend: close %s backend: %w", o.kind, err))
		}
		if o.client != nil {
			if err := o.client.Close(); err != nil {
				errs = multierror.Append(errs, fmt.Errorf("backend: close Redis client: %w", err))
			}
		}
		o.closeErr = errs.ErrorOrNil()
	})
	return o.closeErr
}
