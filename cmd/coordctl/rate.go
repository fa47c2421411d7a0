package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
	"github.com/cgn-bot/coord/driver"
)

// rateJSON is a rate limited key in JSON output.
type rateJSON struct {
	Key           string        `json:"key"`
	GCRAResetMs   int64         `json:"gcra_reset_after_ms"`
	WindowEvents  int64         `json:"window_events"`
	WindowResetMs int64         `json:"window_reset_after_ms"`
	Limit         string        `json:"limit,omitempty"`
	Decision      *decisionJSON `json:"decision,omitempty"`
}

// decisionJSON is a Peek under the limit the flags give.
type decisionJSON struct {
	Allowed      bool  `json:"allowed"`
	Remaining    int   `json:"remaining"`
	RetryAfterMs int64 `json:"retry_after_ms"`
	ResetAfterMs int64 `json:"reset_after_ms"`
}

// rate dispatches rate show|reset.
func (c *cli) rate(ctx context.Context, rest []string) error {
	if len(rest) == 0 {
		return usageErr("rate: want show or reset")
	}
	switch rest[0] {
	case "show", "get":
		return c.rateShow(ctx, rest[1:])
	case "reset":
		return c.rateReset(ctx, rest[1:])
	}
	return usageErr("rate: unknown command %q (want show or reset)", rest[0])
}

// limitFlags adds the flags of a limit to fs.
func limitFlags(fs *flag.FlagSet) *coord.Limit {
	l := &coord.Limit{}
	fs.IntVar(&l.Rate, "rate", 0, "the limit's Rate, to show the decision it would make now")
	fs.DurationVar(&l.Period, "period", 0, "the limit's Period")
	fs.IntVar(&l.Burst, "burst", 0, "the limit's Burst (GCRA; default Rate)")
	fs.BoolVar(&l.Window, "window", false, "the limit is a sliding window")
	return l
}

func rateKeyArg(key string) error {
	if err := driver.ValidateName("KEY", key); err != nil {
		return usageErr("%v", err)
	}
	return nil
}

// rateShow: rate show KEY [--rate N --period D [--burst B] [--window]].
// Without a limit it shows what Redis holds; with one, also the decision
// Allow would make now (Peek: nothing is recorded). Exit 3 when Redis
// holds nothing about KEY.
func (c *cli) rateShow(ctx context.Context, args []string) error {
	fs := c.flagSet("rate show")
	l := limitFlags(fs)
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs("rate show", rest, 1, 1, "KEY"); err != nil {
		return err
	}
	if err := rateKeyArg(rest[0]); err != nil {
		return err
	}
	withLimit := l.Rate != 0 || l.Period != 0
	if withLimit {
		if err := l.Validate(1); err != nil {
			return usageErr("rate show: %v", err)
		}
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	info, err := cn.b.RateInfo(octx, rest[0])
	if err != nil {
		return err
	}
	out := toRateJSON(info)
	if withLimit {
		d, err := cn.b.RateLimiter().Peek(octx, rest[0], *l)
		if err != nil {
			return err
		}
		out.Limit = l.String()
		out.Decision = &decisionJSON{Allowed: d.Allowed, Remaining: d.Remaining, RetryAfterMs: ms(d.RetryAfter), ResetAfterMs: ms(d.ResetAfter)}
	}
	if c.json() {
		err = c.writeJSON(out)
	} else {
		err = c.printRate(out)
	}
	if err == nil && info.GCRAResetAfter == 0 && info.WindowEvents == 0 {
		return &codeError{code: exitNotFound}
	}
	return err
}

func toRateJSON(info coordredis.RateInfo) rateJSON {
	return rateJSON{Key: info.Key, GCRAResetMs: ms(info.GCRAResetAfter), WindowEvents: info.WindowEvents, WindowResetMs: ms(info.WindowResetAfter)}
}

func durText(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

func (c *cli) printRate(r rateJSON) error {
	tw := c.table()
	fmt.Fprintln(tw, "KEY\tGCRA RESET\tWINDOW EVENTS\tWINDOW RESET")
	fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.Key, durText(r.GCRAResetMs), r.WindowEvents, durText(r.WindowResetMs))
	if r.Decision != nil {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "LIMIT\tALLOWED\tREMAINING\tRETRY AFTER\tRESET AFTER")
		d := r.Decision
		fmt.Fprintf(tw, "%s\t%v\t%d\t%s\t%s\n", r.Limit, d.Allowed, d.Remaining, durText(d.RetryAfterMs), durText(d.ResetAfterMs))
	}
	return tw.Flush()
}

// rateReset: rate reset KEY. It forgets KEY's history under both
// algorithms.
func (c *cli) rateReset(ctx context.Context, args []string) error {
	fs := c.flagSet("rate reset")
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs("rate reset", rest, 1, 1, "KEY"); err != nil {
		return err
	}
	if err := rateKeyArg(rest[0]); err != nil {
		return err
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	if err := cn.b.RateLimiter().Reset(octx, rest[0]); err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(map[string]any{"key": rest[0], "reset": true})
	}
	fmt.Fprintf(c.stdout, "reset %s\n", rest[0])
	return nil
}
