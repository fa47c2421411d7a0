package main

import (
	"context"
	"fmt"

	"github.com/cgn-bot/coord"
)

// healthJSON is health's JSON output.
type healthJSON struct {
	Status     string  `json:"status"`
	Backend    string  `json:"backend"`
	Mode       string  `json:"mode,omitempty"` // single or cluster
	Server     string  `json:"server,omitempty"`
	Connection string  `json:"connection"`
	LatencyMs  float64 `json:"latency_ms"`
	Sessions   int64   `json:"sessions"`
	Error      string  `json:"error,omitempty"`
}

// health: health. Exit 0 healthy, 7 degraded, 1 unhealthy or unreachable.
func (c *cli) health(ctx context.Context, args []string) error {
	fs := c.flagSet("health")
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs("health", rest, 0, 0, "no argument"); err != nil {
		return err
	}
	h := healthJSON{Backend: "redis", Sessions: -1, Connection: string(coord.Disconnected)}
	cn, err := c.connect(ctx)
	if err != nil {
		if exitCode(err) == exitUsage {
			return err
		}
		h.Status, h.Error = string(coord.Unhealthy), err.Error()
	} else {
		defer cn.close(ctx)
		octx, cancel := c.opCtx(ctx)
		defer cancel()
		hh := cn.b.Health(octx)
		h.Status, h.Connection, h.Sessions, h.Error = string(hh.Status), string(hh.Connection), hh.Sessions, hh.Error
		h.LatencyMs = float64(hh.Latency.Microseconds()) / 1000
		h.Server, h.Mode = cn.where, "single"
		if cn.cluster {
			h.Mode = "cluster"
		}
	}
	if c.json() {
		err = c.writeJSON(h)
	} else {
		tw := c.table()
		fmt.Fprintln(tw, "STATUS\tMODE\tSERVER\tCONNECTION\tLATENCY\tSESSIONS\tERROR")
		sessions := "-"
		if h.Sessions >= 0 {
			sessions = fmt.Sprint(h.Sessions)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.3fms\t%s\t%s\n", h.Status, orDash(h.Mode), orDash(h.Server), h.Connection, h.LatencyMs, sessions, orDash(h.Error))
		err = tw.Flush()
	}
	if err != nil {
		return err
	}
	switch coord.HealthStatus(h.Status) {
	case coord.Healthy:
		return nil
	case coord.Degraded:
		return &codeError{code: exitDegraded}
	}
	return &codeError{code: exitError}
}
