package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// leaseJSON is a lease in JSON output. It never carries the token.
type leaseJSON struct {
	Resource string `json:"resource"`
	State    string `json:"state"`
	TTLms    int64  `json:"ttl_ms"`
	Fence    int64  `json:"fence"`
	Holder   string `json:"holder"`
	Tag      string `json:"tag"`
}

func toLeaseJSON(li coordredis.LeaseInfo) leaseJSON {
	return leaseJSON{Resource: li.Resource, State: string(li.State), TTLms: ms(li.TTL), Fence: li.Fence, Holder: li.Holder, Tag: li.Tag}
}

// ttlText formats a lease's TTL for a table.
func ttlText(li coordredis.LeaseInfo) string {
	switch {
	case li.State == coordredis.LeaseFree:
		return "-"
	case li.TTL < 0:
		return "none"
	}
	return li.TTL.Round(time.Millisecond).String()
}

// fenceText formats a fence for a table.
func fenceText(f int64) string {
	if f == 0 {
		return "-"
	}
	return strconv.FormatInt(f, 10)
}

// printLeases writes leases as a table or a JSON array.
func (c *cli) printLeases(leases []coordredis.LeaseInfo) error {
	if c.json() {
		out := make([]leaseJSON, 0, len(leases))
		for _, li := range leases {
			out = append(out, toLeaseJSON(li))
		}
		return c.writeJSON(out)
	}
	tw := c.table()
	fmt.Fprintln(tw, "RESOURCE\tSTATE\tTTL\tFENCE\tHOLDER\tTAG")
	for _, li := range leases {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", li.Resource, li.State, ttlText(li), fenceText(li.Fence), orDash(li.Holder), orDash(li.Tag))
	}
	return tw.Flush()
}

// lockList: lock list [PREFIX].
func (c *cli) lockList(ctx context.Context, args []string) error {
	fs := c.flagSet("lock list")
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs("lock list", rest, 0, 1, "at most a PREFIX"); err != nil {
		return err
	}
	prefix := ""
	if len(rest) == 1 {
		prefix = rest[0]
		if err := coord.ValidateName("prefix", prefix); err != nil {
			return &codeError{code: exitUsage, err: err}
		}
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	leases, err := cn.b.Leases(octx, prefix)
	if err != nil {
		return err
	}
	return c.printLeases(leases)
}

// resourceArg validates a resource name argument.
func resourceArg(name string) error {
	if err := coord.ValidateName("resource", name); err != nil {
		return &codeError{code: exitUsage, err: err}
	}
	return nil
}

// lockShow: lock show NAME. Exit 3 when nobody holds it.
func (c *cli) lockShow(ctx context.Context, args []string) error {
	fs := c.flagSet("lock show")
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs("lock show", rest, 1, 1, "NAME"); err != nil {
		return err
	}
	if err := resourceArg(rest[0]); err != nil {
		return err
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	li, err := cn.b.Lease(octx, rest[0])
	if err != nil {
		return err
	}
	if c.json() {
		err = c.writeJSON(toLeaseJSON(li))
	} else {
		err = c.printLeases([]coordredis.LeaseInfo{li})
	}
	if err == nil && li.State != coordredis.LeaseHeld {
		return &codeError{code: exitNotFound}
	}
	return err
}

// lockForceRelease: lock force-release [--yes] NAME. Exit 3 when there
// was no lease.
func (c *cli) lockForceRelease(ctx context.Context, args []string) error {
	fs := c.flagSet("lock force-release")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	fs.BoolVar(yes, "y", false, "do not ask for confirmation")
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs("lock force-release", rest, 1, 1, "NAME"); err != nil {
		return err
	}
	name := rest[0]
	if err := resourceArg(name); err != nil {
		return err
	}
	if err := c.checkGlobals(); err != nil {
		return err
	}
	if err := c.confirm(*yes, fmt.Sprintf("force-release the lease on %q", name)); err != nil {
		return err
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	released, err := cn.b.Locker().ForceRelease(octx, name)
	if err != nil {
		return err
	}
	if c.json() {
		err = c.writeJSON(struct {
			Resource string `json:"resource"`
			Released bool   `json:"released"`
		}{name, released})
	} else if released {
		_, err = fmt.Fprintf(c.stdout, "released %s\n", name)
	} else {
		_, err = fmt.Fprintf(c.stdout, "%s: no lease\n", name)
	}
	if err == nil && !released {
		return &codeError{code: exitNotFound}
	}
	return err
}

// Defaults of lock run.
const (
	defaultRunTTL   = 10 * time.Second
	defaultKillWait = 10 * time.Second
)

// lockRun: lock run [flags] NAME -- CMD [ARG...]. It holds the lease,
// auto-renewed, while CMD runs, with COORD_FENCE and COORD_LOCK in CMD's
// environment; it stops CMD (SIGTERM, then SIGKILL after --kill-after)
// when the lease is lost (exit 6) or coordctl is interrupted, releases
// the lease, and exits with CMD's exit code.
func (c *cli) lockRun(ctx context.Context, args []string) error {
	fs := c.flagSet("lock run")
	ttl := fs.Duration("ttl", defaultRunTTL, "lease TTL; renewed every TTL/3")
	wait := fs.Duration("wait", 0, "how long to wait for the lease (0: until interrupted)")
	noWait := fs.Bool("no-wait", false, "exit 4 at once when the lease is held")
	killAfter := fs.Duration("kill-after", defaultKillWait, "wait between SIGTERM and SIGKILL when stopping the command")
	rest, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	if len(rest) < 2 {
		return usageErr("lock run: want NAME -- CMD [ARG...]")
	}
	name, argv := rest[0], rest[1:]
	if err := resourceArg(name); err != nil {
		return err
	}
	if err := coord.ValidateTTL("--ttl", *ttl); err != nil {
		return &codeError{code: exitUsage, err: err}
	}
	if *wait < 0 || *killAfter < 0 {
		return usageErr("lock run: --wait and --kill-after must not be negative")
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)

	opts := []coord.LockOption{coord.WithTTL(*ttl), coord.WithAutoRenew()}
	actx, cancel := ctx, context.CancelFunc(func() {})
	switch {
	case *noWait:
		opts = append(opts, coord.WithRetry(0, 0))
		actx, cancel = c.opCtx(ctx)
	case *wait > 0:
		opts = append(opts, coord.WithWait(0))
		actx, cancel = context.WithTimeout(ctx, *wait)
	default:
		opts = append(opts, coord.WithWait(0))
	}
	l, err := cn.b.Locker().Acquire(actx, name, opts...)
	cancel()
	if err != nil {
		if errors.Is(err, coord.ErrNotAcquired) && ctx.Err() == nil {
			return &codeError{code: exitBusy, msg: fmt.Sprintf("lease %q is held by someone else", name)}
		}
		if ctx.Err() != nil {
			return &codeError{code: exitError, msg: fmt.Sprintf("interrupted while waiting for lease %q", name)}
		}
		return err
	}

	code, lost, err := c.runUnder(ctx, l, name, argv, *killAfter)
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), c.g.timeout)
	defer rcancel()
	rerr := l.Release(rctx)
	switch {
	case err != nil:
		return err
	case lost:
		return &codeError{code: exitLost, msg: fmt.Sprintf("lease %q lost while the command ran: the command was stopped", name)}
	case errors.Is(rerr, coord.ErrNotHeld):
		return &codeError{code: exitLost, msg: fmt.Sprintf("lease %q was lost before the command ended (it exited %d)", name, code)}
	case rerr != nil:
		fmt.Fprintf(c.stderr, "coordctl: releasing lease %q: %v (it expires by its TTL)\n", name, rerr)
	}
	if code != 0 {
		return &codeError{code: code}
	}
	return nil
}

// runUnder runs argv while l is held and returns its exit code, and
// whether it was stopped because the lease was lost. err is set when the
// command could not start (exit 126, or 127 when it was not found).
func (c *cli) runUnder(ctx context.Context, l coord.Lock, name string, argv []string, killAfter time.Duration) (code int, lost bool, err error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "COORD_LOCK="+name, "COORD_FENCE="+strconv.FormatInt(l.Fence(), 10))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = c.stdin, c.stdout, c.stderr
	cmd.WaitDelay = time.Second // for the copying of non-file streams
	if err := cmd.Start(); err != nil {
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = 127
		}
		return code, false, &codeError{code: code, msg: "lock run", err: err}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	exited := false
	select {
	case werr = <-done:
		exited = true
	case <-l.Done():
		lost = true
	case <-ctx.Done():
	}
	if !exited {
		select {
		case werr = <-done: // it ended at the same moment
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			t := time.NewTimer(killAfter)
			select {
			case werr = <-done:
			case <-t.C:
				_ = cmd.Process.Kill()
				werr = <-done
			}
			t.Stop()
		}
	}
	return exitStatus(cmd, werr), lost, nil
}

// exitStatus returns the exit code of a finished command as a shell
// reports it: 128 + the signal's number when a signal ended it.
func exitStatus(cmd *exec.Cmd, err error) int {
	if cmd.ProcessState == nil {
		return exitError
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	if code := cmd.ProcessState.ExitCode(); code >= 0 {
		if code == 0 && err != nil {
			return exitError // the command succeeded, its I/O did not
		}
		return code
	}
	return exitError
}
