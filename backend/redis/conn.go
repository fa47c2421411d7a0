package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
)

// Errors of the connection helpers.
var (
	// ErrNotConfigured is returned by [FromEnv] when neither REDIS_URL
	// nor REDIS_HOST is set: the caller should run without Redis.
	ErrNotConfigured = errors.New("coord/redis: no Redis configured (REDIS_URL or REDIS_HOST)")

	// ErrAuth is wrapped (with [coord.ErrUnavailable]) by the error of
	// [Connect] when the server refused the credentials. The error never
	// contains the password.
	ErrAuth = errors.New("coord/redis: authentication failed")
)

// Connection defaults, the Node fleet's (docs/WIRE.md).
const (
	// ConnectAttempts is how many times [Connect] tries the server.
	ConnectAttempts = 10
	// ConnectMaxDelay is the longest wait between two tries of [Connect].
	ConnectMaxDelay = 3 * time.Second
	// connectFirstDelay is the wait after the first failed try; it doubles.
	connectFirstDelay = 100 * time.Millisecond
)

// ParseURL parses a redis:// or rediss:// (TLS) URL into go-redis
// options: redis://[user[:password]@]host[:port][/db][?option=value...].
// The query options are go-redis's (dial_timeout, read_timeout,
// pool_size, protocol, ...) and tls_ca_file, a PEM file of the CAs a
// rediss:// server's certificate must chain to (default: the system's);
// an unknown one is an error. Every error wraps [coord.ErrInvalid] and
// never contains the password.
func ParseURL(rawURL string) (*goredis.Options, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: coord/redis: malformed Redis URL: %v", coord.ErrInvalid, err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("%w: coord/redis: Redis URL scheme %q is not redis or rediss", coord.ErrInvalid, u.Scheme)
	}
	q := u.Query()
	caFile := q.Get("tls_ca_file")
	if q.Has("tls_ca_file") {
		q.Del("tls_ca_file")
		u.RawQuery = q.Encode()
		rawURL = u.String()
	}
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		pw, _ := u.User.Password()
		return nil, fmt.Errorf("%w: coord/redis: Redis URL: %s", coord.ErrInvalid, redact(err.Error(), pw))
	}
	if caFile != "" {
		if err := setCAFile(opts, caFile); err != nil {
			return nil, err
		}
	}
	return opts, nil
}

// setCAFile makes opts trust only the CAs in the PEM file path.
func setCAFile(opts *goredis.Options, path string) error {
	if opts.TLSConfig == nil {
		return fmt.Errorf("%w: coord/redis: a CA file needs TLS (rediss://)", coord.ErrInvalid)
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: coord/redis: CA file: %v", coord.ErrInvalid, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%w: coord/redis: CA file %q holds no PEM certificate", coord.ErrInvalid, path)
	}
	opts.TLSConfig.RootCAs = pool
	return nil
}

// NewClient returns a go-redis client for a redis:// or rediss:// URL
// (see [ParseURL]). The caller owns it and closes it after the Backend.
func NewClient(rawURL string) (*goredis.Client, error) {
	opts, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return goredis.NewClient(opts), nil
}

// FromEnv returns go-redis options from the environment, as the Node
// design reads it: REDIS_URL when set (see [ParseURL]), else REDIS_HOST,
// REDIS_PORT (default 6379), REDIS_PASSWORD and REDIS_DB (default 0), with
// TLS when REDIS_TLS is "true". REDIS_TLS_CA_FILE names a PEM file of the
// CAs to trust for TLS. It returns [ErrNotConfigured] when neither
// REDIS_URL nor REDIS_HOST is set.
func FromEnv() (*goredis.Options, error) { return FromLookup(os.Getenv) }

// FromLookup is [FromEnv] with the environment read through getenv.
func FromLookup(getenv func(string) string) (*goredis.Options, error) {
	if u := getenv("REDIS_URL"); u != "" {
		opts, err := ParseURL(u)
		if err != nil {
			return nil, err
		}
		if ca := getenv("REDIS_TLS_CA_FILE"); ca != "" {
			if err := setCAFile(opts, ca); err != nil {
				return nil, err
			}
		}
		return opts, nil
	}
	host := getenv("REDIS_HOST")
	if host == "" {
		return nil, ErrNotConfigured
	}
	port := getenv("REDIS_PORT")
	if port == "" {
		port = "6379"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("%w: coord/redis: REDIS_PORT %q is not a port", coord.ErrInvalid, port)
	}
	opts := &goredis.Options{Addr: net.JoinHostPort(host, port), Password: getenv("REDIS_PASSWORD")}
	if db := getenv("REDIS_DB"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: coord/redis: REDIS_DB %q is not a database number", coord.ErrInvalid, db)
		}
		opts.DB = n
	}
	switch tlsOn := getenv("REDIS_TLS"); tlsOn {
	case "", "false", "0":
	case "true", "1":
		opts.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	default:
		return nil, fmt.Errorf("%w: coord/redis: REDIS_TLS %q is not true or false", coord.ErrInvalid, tlsOn)
	}
	if ca := getenv("REDIS_TLS_CA_FILE"); ca != "" {
		if err := setCAFile(opts, ca); err != nil {
			return nil, err
		}
	}
	return opts, nil
}

// redact replaces secret in s.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}

// passwordOf returns the password a client authenticates with, if it can
// be known, so that errors never carry it.
func passwordOf(c goredis.UniversalClient) string {
	switch t := c.(type) {
	case *goredis.Client:
		return t.Options().Password
	case *goredis.ClusterClient:
		return t.Options().Password
	case *goredis.Ring:
		return t.Options().Password
	}
	return ""
}

func isAuthError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"WRONGPASS", "NOAUTH", "NOPERM", "invalid password", "invalid username-password", "AUTH <password> called without", "AUTH failed"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// ConnectOption configures [Connect].
type ConnectOption func(*connectConfig)

type connectConfig struct {
	logger *slog.Logger
}

// ConnectLogger makes [Connect] log each failed try that it will retry,
// at [slog.LevelWarn] on l, with the message "coord/redis: Redis did not
// answer; retrying" and the attributes addr (the server, when the client
// names one), attempt, attempts (the most it makes), error (without the
// password) and retry_in (the wait before the next try). A nil l logs
// nothing, which is the default.
func ConnectLogger(l *slog.Logger) ConnectOption {
	return func(c *connectConfig) { c.logger = l }
}

// addrOf returns the server a client talks to, for log lines, or "" when
// it has several.
func addrOf(c goredis.UniversalClient) string {
	if t, ok := c.(*goredis.Client); ok {
		return t.Options().Addr
	}
	return ""
}

// Connect waits until client answers PING: up to [ConnectAttempts] tries
// with exponential backoff from 100ms to at most [ConnectMaxDelay] apart,
// bounded by ctx. A refused AUTH ends it at once with an error wrapping
// [ErrAuth]; other failures wrap [coord.ErrUnavailable]. No error contains
// the password. With [ConnectLogger], each try that fails and is retried
// is logged.
func Connect(ctx context.Context, client goredis.UniversalClient, opts ...ConnectOption) error {
	var cfg connectConfig
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	pw := passwordOf(client)
	delay := connectFirstDelay
	var last error
	for attempt := 1; attempt <= ConnectAttempts; attempt++ {
		err := client.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		if isAuthError(err) {
			return fmt.Errorf("%w: %w: %s", coord.ErrUnavailable, ErrAuth, redact(err.Error(), pw))
		}
		if last == nil || ctx.Err() == nil {
			last = err // keep the cause, not the context's error
		}
		if ctx.Err() != nil || attempt == ConnectAttempts {
			break
		}
		if cfg.logger != nil {
			cfg.logger.LogAttrs(ctx, slog.LevelWarn, "coord/redis: Redis did not answer; retrying",
				slog.String("addr", addrOf(client)),
				slog.Int("attempt", attempt),
				slog.Int("attempts", ConnectAttempts),
				slog.String("error", redact(err.Error(), pw)),
				slog.Duration("retry_in", delay))
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		if ctx.Err() != nil {
			break
		}
		delay = min(2*delay, ConnectMaxDelay)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: coord/redis: connect: %s (%w)", coord.ErrUnavailable, redact(last.Error(), pw), err)
	}
	return fmt.Errorf("%w: coord/redis: connect: no answer after %d attempts: %s", coord.ErrUnavailable, ConnectAttempts, redact(last.Error(), pw))
}

// ClientLogger is the logger interface of go-redis, the argument of
// [goredis.SetLogger].
type ClientLogger interface {
	Printf(ctx context.Context, format string, v ...any)
}

// SlogLogger returns a go-redis logger that writes each line go-redis
// logs (a dropped connection, a failed reconnect, a pool error) to l as
// one record at [slog.LevelWarn], with the message "go-redis: " followed
// by the line and the attribute source="go-redis". go-redis logs through
// one logger per process, so routing it is a process-wide choice that
// coord never makes by itself: call
//
//	goredis.SetLogger(coordredis.SlogLogger(logger))
//
// once at start-up, before opening clients. A nil l gives a logger that
// discards every line. See docs/LOGGING.md.
func SlogLogger(l *slog.Logger) ClientLogger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return slogLogger{l: l}
}

type slogLogger struct{ l *slog.Logger }

// Printf logs the line at warn level.
func (s slogLogger) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	if !s.l.Enabled(ctx, slog.LevelWarn) {
		return
	}
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	msg = strings.TrimPrefix(msg, "redis: ")
	s.l.LogAttrs(ctx, slog.LevelWarn, "go-redis: "+msg, slog.String("source", "go-redis"))
}
