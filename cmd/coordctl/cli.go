package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/driver"
)

// Exit codes: scripts may rely on them (docs/CLI.md).
const (
	exitOK       = 0 // done
	exitError    = 1 // failed: Redis unreachable, refused, or bad data read
	exitUsage    = 2 // bad flags or arguments, or no Redis configured
	exitNotFound = 3 // no such lease or session; lease not held
	exitBusy     = 4 // lock run: the lease is held by someone else
	exitRefused  = 5 // confirmation declined, or needed and impossible
	exitLost     = 6 // lock run: the lease was lost while the command ran
	exitDegraded = 7 // health: degraded
)

// Defaults of the global flags.
const (
	defaultTimeout = 10 * time.Second
	defaultOutput  = "table"
)

// cli is one run of coordctl: its streams, environment and flags.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// isTerminal reports whether stdin is a terminal, for confirmations.
	isTerminal func(io.Reader) bool

	g globals
}

// globals are the flags every subcommand takes.
type globals struct {
	url     string
	prefix  string
	output  string
	timeout time.Duration
}

// run runs coordctl with args (without the program name) and returns its
// exit code. ctx ends a wait, a tail or a command run under a lease.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return newCLI(stdin, stdout, stderr, os.Getenv).main(ctx, args)
}

// newCLI returns a cli on the given streams and environment, with the
// global flags at their defaults.
func newCLI(stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) *cli {
	return &cli{
		stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, isTerminal: fileIsTerminal,
		g: globals{output: defaultOutput, timeout: defaultTimeout},
	}
}

// main dispatches args and maps the outcome to an exit code.
func (c *cli) main(ctx context.Context, args []string) int {
	err := c.dispatch(ctx, args)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := exitCode(err)
	var ce *codeError
	if !errors.As(err, &ce) || ce.msg != "" || ce.err != nil {
		fmt.Fprintf(c.stderr, "coordctl: %v\n", err)
	}
	return code
}

// codeError ends a run with a chosen exit code; msg, when set, is printed.
type codeError struct {
	code int
	msg  string
	err  error
}

func (e *codeError) Error() string {
	if e.err != nil {
		if e.msg != "" {
			return e.msg + ": " + e.err.Error()
		}
		return e.err.Error()
	}
	return e.msg
}

func (e *codeError) Unwrap() error { return e.err }

// usageErr returns a usage error (exit code 2).
func usageErr(format string, args ...any) error {
	return &codeError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// exitCode maps an error to the exit code documented for it.
func exitCode(err error) int {
	var ce *codeError
	switch {
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, coord.ErrNotFound), errors.Is(err, coord.ErrNotHeld):
		return exitNotFound
	case errors.Is(err, coord.ErrNotAcquired):
		return exitBusy
	}
	return exitError
}

const usageText = `coordctl administers coord on Redis.

Usage:
  coordctl [global flags] <command> [flags] [arguments]

Commands:
  lock list [PREFIX]             leases held, by resource name prefix
  lock show NAME                 one lease (exit 3 when nobody holds it)
  lock force-release NAME        delete a lease whoever holds it (asks first)
  lock run NAME -- CMD [ARG...]  run CMD while holding the lease NAME
  session count                  number of live sessions
  session stats                  sessions, users, oldest session
  session list USER              a user's sessions, by handle
  session revoke USER HANDLE     end one session
  session logout USER            end every session of USER (asks first)
  tail [invalidations|events]    print invalidations and events as they come
  stream info|pending STREAM     a stream's length, groups, pending, lag
  stream dead|replay STREAM      its dead letters; its entries from an ID
  health                         connection and server health
  job show NAME --every D        a RunEvery job: this period done?, failures, runner
  rate show KEY [--rate N --period D [--burst B] [--window]]
                                 a rate limited key (exit 3 when unknown)
  rate reset KEY                 forget a rate limited key's history
  rw show NAME                   a read-write resource's writer, readers, waiting writers
  sem show NAME                  a semaphore's permit holders
  elect show NAME                an election's leader (instance, identity, term)
  elect watch NAME [--count N]   print the leader and each change of leader

Global flags (also accepted after the command):
  --url URL          redis:// or rediss:// URL (default: $REDIS_URL, else
                     $REDIS_HOST, $REDIS_PORT, $REDIS_PASSWORD, $REDIS_DB, $REDIS_TLS)
  --prefix P         key prefix (default cgn:)
  -o, --output FMT   table or json (default table)
  --timeout D        bound on connecting and on each command (default 10s)

Exit codes: 0 ok, 1 error, 2 usage, 3 not found or not held, 4 lease busy,
5 confirmation refused, 6 lease lost, 7 degraded; lock run otherwise exits
with its command's code. See docs/CLI.md.
`

// dispatch runs the command args name.
func (c *cli) dispatch(ctx context.Context, args []string) error {
	fs := c.flagSet("coordctl")
	rest, err := parseUntilCommand(fs, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		fmt.Fprint(c.stderr, usageText)
		return &codeError{code: exitUsage}
	}
	cmd, rest := rest[0], rest[1:]
	sub := ""
	if len(rest) > 0 {
		sub = rest[0]
	}
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(c.stdout, usageText)
		return nil
	case "lock":
		if len(rest) == 0 {
			return usageErr("lock: want list, show, force-release or run")
		}
		rest = rest[1:]
		switch sub {
		case "list", "ls":
			return c.lockList(ctx, rest)
		case "show", "get":
			return c.lockShow(ctx, rest)
		case "force-release":
			return c.lockForceRelease(ctx, rest)
		case "run":
			return c.lockRun(ctx, rest)
		}
		return usageErr("lock: unknown command %q (want list, show, force-release or run)", sub)
	case "session", "sessions":
		if len(rest) == 0 {
			return usageErr("session: want count, stats, list, revoke or logout")
		}
		rest = rest[1:]
		switch sub {
		case "count":
			return c.sessionCount(ctx, rest)
		case "stats":
			return c.sessionStats(ctx, rest)
		case "list", "ls":
			return c.sessionList(ctx, rest)
		case "revoke":
			return c.sessionRevoke(ctx, rest)
		case "logout":
			return c.sessionLogout(ctx, rest)
		}
		return usageErr("session: unknown command %q (want count, stats, list, revoke or logout)", sub)
	case "tail":
		return c.tail(ctx, rest)
	case "health":
		return c.health(ctx, rest)
	case "job", "jobs":
		return c.job(ctx, rest)
	case "rate":
		return c.rate(ctx, rest)
	case "rw", "sem", "elect":
		return c.leaseCmd(ctx, cmd, rest)
	case "stream", "streams":
		return c.streams(ctx, rest)
	}
	return usageErr("unknown command %q (run coordctl help)", cmd)
}

// flagSet returns a FlagSet with the global flags, writing to c.g.
func (c *cli) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() { fmt.Fprint(c.stderr, usageText) }
	fs.StringVar(&c.g.url, "url", c.g.url, "redis:// or rediss:// URL")
	fs.StringVar(&c.g.prefix, "prefix", c.g.prefix, "key prefix (default: the URL's ?prefix=, else cgn:)")
	fs.StringVar(&c.g.output, "o", c.g.output, "output: table or json")
	fs.StringVar(&c.g.output, "output", c.g.output, "output: table or json")
	fs.DurationVar(&c.g.timeout, "timeout", c.g.timeout, "bound on connecting and on each command")
	return fs
}

// parseUntilCommand parses the global flags before the command name.
func parseUntilCommand(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		return nil, flagErr(err)
	}
	return fs.Args(), nil
}

// flagErr turns a flag parsing error into a usage error (flag has printed
// it already, with the usage).
func flagErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &codeError{code: exitUsage, err: err}
}

// parseArgs parses fs over args, flags and arguments in any order, and
// returns the arguments. A "--" ends the flags. After most arguments
// (most < 0: no limit), the rest of args is returned as it is, after the
// arguments (for lock run's command), without a leading "--".
func parseArgs(fs *flag.FlagSet, args []string, most int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, flagErr(err)
		}
		rest := fs.Args()
		ended := len(rest) < len(args) && args[len(args)-len(rest)-1] == "--"
		if ended || len(rest) == 0 {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
		if most >= 0 && len(pos) == most {
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			return append(pos, args...), nil
		}
	}
}

// checkGlobals validates the global flags after parsing.
func (c *cli) checkGlobals() error {
	switch c.g.output {
	case "table", "json":
	default:
		return usageErr("-o %q: want table or json", c.g.output)
	}
	if c.g.timeout <= 0 {
		return usageErr("--timeout %v: want a positive duration", c.g.timeout)
	}
	return nil
}

// wantArgs checks the number of arguments.
func wantArgs(cmd string, args []string, least, most int, names string) error {
	if len(args) < least || (most >= 0 && len(args) > most) {
		return usageErr("%s: want %s, got %d argument(s)", cmd, names, len(args))
	}
	return nil
}

// conn is an open connection: the client and the Backend on it.
type conn struct {
	client  goredis.UniversalClient
	b       *coordredis.Backend
	cluster bool
	where   string // the server, without credentials
}

// close closes the Backend (releasing what it holds) and the client.
func (cn *conn) close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = cn.b.Close(ctx)
	_ = cn.client.Close()
}

// redisOptions returns the go-redis options the flags and environment
// name, and the prefix a URL's ?prefix= sets ("" when none).
func (c *cli) redisOptions() (*goredis.Options, string, error) {
	raw, from := c.g.url, "--url"
	if raw == "" {
		raw, from = c.getenv("REDIS_URL"), "REDIS_URL"
	}
	if raw == "" {
		opts, err := coordredis.FromLookup(c.getenv)
		if errors.Is(err, coordredis.ErrNotConfigured) {
			return nil, "", usageErr("no Redis configured: give --url, or set REDIS_URL or REDIS_HOST")
		}
		if err != nil {
			return nil, "", &codeError{code: exitUsage, err: err}
		}
		return opts, "", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the URL, password included: say only where.
		return nil, "", usageErr("%s: malformed URL", from)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, "", usageErr("%s: scheme %q: want redis:// or rediss://", from, u.Scheme)
	}
	q := u.Query()
	prefix := q.Get("prefix")
	q.Del("prefix")
	q.Del("instance")
	u.RawQuery = q.Encode()
	opts, err := coordredis.ParseURL(u.String())
	if err != nil {
		return nil, "", &codeError{code: exitUsage, err: err}
	}
	if ca := c.getenv("REDIS_TLS_CA_FILE"); ca != "" && from == "REDIS_URL" {
		opts, err = coordredis.FromLookup(func(k string) string {
			if k == "REDIS_URL" {
				return u.String()
			}
			return c.getenv(k)
		})
		if err != nil {
			return nil, "", &codeError{code: exitUsage, err: err}
		}
	}
	return opts, prefix, nil
}

// connect opens the connection the flags and environment name: a Cluster
// client when the server is a Cluster node.
func (c *cli) connect(ctx context.Context) (*conn, error) {
	if err := c.checkGlobals(); err != nil {
		return nil, err
	}
	opts, urlPrefix, err := c.redisOptions()
	if err != nil {
		return nil, err
	}
	prefix := c.g.prefix
	if prefix == "" {
		prefix = urlPrefix
	}
	if prefix == "" {
		prefix = coordredis.DefaultPrefix
	}
	ctx, cancel := context.WithTimeout(ctx, c.g.timeout)
	defer cancel()
	cn := &conn{where: opts.Addr}
	var client goredis.UniversalClient = goredis.NewClient(opts)
	if err := coordredis.Connect(ctx, client); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("connect to Redis at %s: %w", cn.where, err)
	}
	if isClusterNode(ctx, client) {
		_ = client.Close()
		if opts.DB != 0 {
			return nil, usageErr("Redis at %s is a Cluster node: database %d does not exist there", cn.where, opts.DB)
		}
		client = goredis.NewClusterClient(clusterOptions(opts))
		cn.cluster = true
		if err := coordredis.Connect(ctx, client); err != nil {
			_ = client.Close()
			return nil, fmt.Errorf("connect to Redis Cluster at %s: %w", cn.where, err)
		}
	}
	b, err := coordredis.New(client, &coordredis.Options{Prefix: prefix, InstanceID: instanceID()})
	if err != nil {
		_ = client.Close()
		return nil, &codeError{code: exitUsage, err: err}
	}
	cn.client, cn.b = client, b
	return cn, nil
}

// isClusterNode reports whether the server runs in cluster mode. A server
// that does not answer INFO (an ACL without it) counts as a single node.
func isClusterNode(ctx context.Context, client goredis.UniversalClient) bool {
	info, err := client.Info(ctx, "cluster").Result()
	return err == nil && strings.Contains(info, "cluster_enabled:1")
}

// clusterOptions returns Cluster options with the settings of o, seeded
// with o's address.
func clusterOptions(o *goredis.Options) *goredis.ClusterOptions {
	return &goredis.ClusterOptions{
		Addrs:           []string{o.Addr},
		Username:        o.Username,
		Password:        o.Password,
		TLSConfig:       o.TLSConfig,
		Protocol:        o.Protocol,
		DialTimeout:     o.DialTimeout,
		ReadTimeout:     o.ReadTimeout,
		WriteTimeout:    o.WriteTimeout,
		PoolSize:        o.PoolSize,
		MaxRetries:      o.MaxRetries,
		MinRetryBackoff: o.MinRetryBackoff,
		MaxRetryBackoff: o.MaxRetryBackoff,
	}
}

// instanceID names coordctl's instance: "coordctl-<host>-<pid>".
func instanceID() string {
	host, err := os.Hostname()
	if err != nil || driver.ValidateName("host", host) != nil || strings.ContainsAny(host, "{}") {
		host = "unknown"
	}
	return fmt.Sprintf("coordctl-%s-%d", host, os.Getpid())
}

// opCtx bounds one command by --timeout.
func (c *cli) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.g.timeout)
}

// json reports whether the output is JSON.
func (c *cli) json() bool { return c.g.output == "json" }

// writeJSON writes v as one line of JSON.
func (c *cli) writeJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table returns a tabwriter on stdout; flush it.
func (c *cli) table() *tabwriter.Writer {
	return tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
}

// confirm asks on the terminal whether to go on with what. Without
// --yes it refuses when stdin is not a terminal.
func (c *cli) confirm(yes bool, what string) error {
	if yes {
		return nil
	}
	if !c.isTerminal(c.stdin) {
		return &codeError{code: exitRefused, msg: "refusing to " + what + " without --yes: stdin is not a terminal"}
	}
	fmt.Fprintf(c.stderr, "%s? [y/N] ", capitalize(what))
	line, err := bufio.NewReader(c.stdin).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(c.stderr)
		return &codeError{code: exitRefused, msg: "aborted: no answer"}
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return &codeError{code: exitRefused, msg: "aborted"}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// fileIsTerminal reports whether r is a character device (a terminal).
func fileIsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// ms returns d in milliseconds, -1 for a negative d.
func ms(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return d.Milliseconds()
}

// timeJSON formats t for JSON output (RFC 3339, UTC, milliseconds), ""
// for the zero time.
func timeJSON(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// timeText formats t for a table, "-" for the zero time.
func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return timeJSON(t)
}

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
