package main

import (
	"context"
	"fmt"

	"github.com/cgn-bot/coord"
)

// userArg validates a user ID argument.
func userArg(user string) error {
	if err := coord.ValidateName("user ID", user); err != nil {
		return &codeError{code: exitUsage, err: err}
	}
	return nil
}

// sessionCount: session count.
func (c *cli) sessionCount(ctx context.Context, args []string) error {
	fs := c.flagSet("session count")
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs("session count", rest, 0, 0, "no argument"); err != nil {
		return err
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	n, err := cn.b.Sessions().Count(octx)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(struct {
			Sessions int64 `json:"sessions"`
		}{n})
	}
	_, err = fmt.Fprintln(c.stdout, n)
	return err
}

// sessionStats: session stats.
func (c *cli) sessionStats(ctx context.Context, args []string) error {
	fs := c.flagSet("session stats")
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs("session stats", rest, 0, 0, "no argument"); err != nil {
		return err
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	st, err := cn.b.Sessions().Stats(octx)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(struct {
			Sessions int64  `json:"sessions"`
			Users    int64  `json:"users"`
			Oldest   string `json:"oldest_created_at"`
		}{st.Sessions, st.Users, timeJSON(st.OldestCreatedAt)})
	}
	tw := c.table()
	fmt.Fprintln(tw, "SESSIONS\tUSERS\tOLDEST")
	fmt.Fprintf(tw, "%d\t%d\t%s\n", st.Sessions, st.Users, timeText(st.OldestCreatedAt))
	return tw.Flush()
}

// sessionJSON is a session in JSON output: its handle, never its token,
// and the number of its data fields, never their values.
type sessionJSON struct {
	Handle         string `json:"handle"`
	User           string `json:"user"`
	CreatedAt      string `json:"created_at"`
	LastAccessedAt string `json:"last_accessed_at"`
	ExpiresAt      string `json:"expires_at"`
	Deadline       string `json:"deadline"`
	Fields         int    `json:"fields"`
}

// sessionList: session list USER.
func (c *cli) sessionList(ctx context.Context, args []string) error {
	fs := c.flagSet("session list")
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs("session list", rest, 1, 1, "USER"); err != nil {
		return err
	}
	if err := userArg(rest[0]); err != nil {
		return err
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	list, err := cn.b.Sessions().ByUser(octx, rest[0])
	if err != nil {
		return err
	}
	if c.json() {
		out := make([]sessionJSON, 0, len(list))
		for _, s := range list {
			out = append(out, sessionJSON{
				Handle: s.Handle, User: s.UserID, CreatedAt: timeJSON(s.CreatedAt),
				LastAccessedAt: timeJSON(s.LastAccessedAt), ExpiresAt: timeJSON(s.ExpiresAt),
				Deadline: timeJSON(s.Deadline), Fields: len(s.Data),
			})
		}
		return c.writeJSON(out)
	}
	tw := c.table()
	fmt.Fprintln(tw, "HANDLE\tCREATED\tLAST ACCESS\tEXPIRES\tDEADLINE\tFIELDS")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", s.Handle, timeText(s.CreatedAt), timeText(s.LastAccessedAt),
			timeText(s.ExpiresAt), timeText(s.Deadline), len(s.Data))
	}
	return tw.Flush()
}

// sessionRevoke: session revoke USER HANDLE. Exit 3 when USER has no such
// session.
func (c *cli) sessionRevoke(ctx context.Context, args []string) error {
	fs := c.flagSet("session revoke")
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs("session revoke", rest, 2, 2, "USER HANDLE"); err != nil {
		return err
	}
	user, handle := rest[0], rest[1]
	if err := userArg(user); err != nil {
		return err
	}
	if !validHandle(handle) {
		// Not echoed: it may be a token pasted by mistake.
		return usageErr("session revoke: HANDLE is not a session handle (32 hex digits, from session list)")
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	if err := cn.b.Sessions().Revoke(octx, user, handle); err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(struct {
			User    string `json:"user"`
			Handle  string `json:"handle"`
			Revoked bool   `json:"revoked"`
		}{user, handle, true})
	}
	_, err = fmt.Fprintf(c.stdout, "revoked %s of %s\n", handle, user)
	return err
}

// validHandle reports whether s has the shape of a session handle: 32
// lower-case hex digits.
func validHandle(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// sessionLogout: session logout [--yes] USER: ends every session of USER.
func (c *cli) sessionLogout(ctx context.Context, args []string) error {
	fs := c.flagSet("session logout")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	fs.BoolVar(yes, "y", false, "do not ask for confirmation")
	rest, err := parseArgs(fs, args, -1)
	if err != nil {
		return err
	}
	if err := wantArgs("session logout", rest, 1, 1, "USER"); err != nil {
		return err
	}
	user := rest[0]
	if err := userArg(user); err != nil {
		return err
	}
	if err := c.checkGlobals(); err != nil {
		return err
	}
	if err := c.confirm(*yes, fmt.Sprintf("end every session of user %q", user)); err != nil {
		return err
	}
	cn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cn.close(ctx)
	octx, cancel := c.opCtx(ctx)
	defer cancel()
	n, err := cn.b.Sessions().DeleteByUser(octx, user)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(struct {
			User  string `json:"user"`
			Ended int    `json:"ended"`
		}{user, n})
	}
	_, err = fmt.Fprintf(c.stdout, "ended %d session(s) of %s\n", n, user)
	return err
}
