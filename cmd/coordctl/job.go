package main

import (
	"context"
	"fmt"
	"time"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/driver"
)

// jobJSON is a periodic job's state in JSON output. It never carries a
// token.
type jobJSON struct {
	Job      string    `json:"job"`
	PeriodMS int64     `json:"period_ms"`
	Index    int64     `json:"index"`
	Start    string    `json:"start"`
	Done     bool      `json:"done"`
	Failures int       `json:"failures"`
	NextMS   int64     `json:"next_ms"`
	Lease    leaseJSON `json:"lease"`
}

// job runs the job subcommands.
func (c *cli) job(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErr("job: want show")
	}
	switch args[0] {
	case "show", "get":
		return c.jobShow(ctx, args[1:])
	}
	return usageErr("job: unknown command %q (want show)", args[0])
}

// jobShow: job show NAME --every D. The state of a job run by
// coord.RunEvery with period D: the current period on the server's clock,
// whether it ran, its failed runs, and who holds the job's lease now.
func (c *cli) jobShow(ctx context.Context, args []string) error {
	fs := c.flagSet("job show")
	every := fs.Duration("every", 0, "the job's period, as given to RunEvery (required)")
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs("job show", rest, 1, 1, "NAME"); err != nil {
		return err
	}
	if _, err := driver.JobPeriod(rest[0], *every); err != nil {
		return &codeError{code: exitUsage, err: fmt.Errorf("job show NAME --every D: %w", err)}
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	slot, err := cn.b.Jobs().Due(octx, rest[0], *every)
	if err != nil {
		return err
	}
	li, err := cn.b.Lease(octx, coord.JobLockPrefix+rest[0])
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(jobJSON{
			Job: rest[0], PeriodMS: ms(slot.Period), Index: slot.Index, Start: timeJSON(slot.Start()),
			Done: slot.Done, Failures: slot.Failures, NextMS: ms(slot.Next), Lease: toLeaseJSON(li),
		})
	}
	w := c.table()
	fmt.Fprintf(w, "JOB\tPERIOD\tINDEX\tSTART\tDONE\tFAILURES\tNEXT IN\tRUNNING ON\n")
	running := "-"
	if li.State == coordredis.LeaseHeld {
		running = li.Holder
		if running == "" {
			running = "held"
		}
	}
	fmt.Fprintf(w, "%s\t%v\t%d\t%s\t%v\t%d\t%v\t%s\n", rest[0], slot.Period, slot.Index, timeText(slot.Start()),
		slot.Done, slot.Failures, slot.Next.Round(time.Millisecond), running)
	return w.Flush()
}
