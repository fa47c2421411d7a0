package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/cgn-bot/coord"
)

// The rueidis contender: github.com/redis/rueidis with its defaults
// (auto-pipelining: the commands of concurrent callers share one
// connection's pipeline), what a throughput-minded user would pick. It
// does the same Redis commands as raw: SET NX PX and EVALSHA
// compare-and-delete for a lock, and the session test's HSET + PEXPIRE,
// HGETALL and HSET.

// newRueidis returns a rueidis client of srv with its defaults (client
// side caching off: no contender caches).
func newRueidis(srv *server) (rueidis.Client, error) {
	return rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.addr}, DisableCache: true})
}

// rueidisLocker is the raw lock (SET NX PX, compare-and-delete script;
// waiting polls every pollDelay) on rueidis.
type rueidisLocker struct {
	c       rueidis.Client
	release *rueidis.Lua
}

func newRueidisLocker(c rueidis.Client) *rueidisLocker {
	return &rueidisLocker{c: c, release: rueidis.NewLuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)}
}

func (r *rueidisLocker) obtain(ctx context.Context, key string, wait bool) (releaser, error) {
	tok := token()
	var t *time.Timer
	for {
		err := r.c.Do(ctx, r.c.B().Set().Key(key).Value(tok).Nx().PxMilliseconds(lockTTL.Milliseconds()).Build()).Error()
		if err == nil {
			return func(ctx context.Context) error {
				return r.release.Exec(ctx, r.c, []string{key}, []string{tok}).Error()
			}, nil
		}
		if !rueidis.IsRedisNil(err) {
			return nil, err
		}
		if !wait {
			return nil, errBusy
		}
		if t == nil {
			t = time.NewTimer(pollDelay)
			defer t.Stop()
		} else {
			t.Reset(pollDelay)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// rueidisSessions does the raw session contender's commands on rueidis.
type rueidisSessions struct {
	c      rueidis.Client
	fields []string // the session's fields, name and JSON value in turn
	keys   []string // one hash per goroutine
}

func newRueidisSessions(ctx context.Context, c rueidis.Client, goroutines int) (*rueidisSessions, error) {
	args, err := encodeFields(sessionData())
	if err != nil {
		return nil, err
	}
	s := &rueidisSessions{c: c}
	for _, a := range args {
		s.fields = append(s.fields, a.(string))
	}
	for g := range goroutines {
		k := fmt.Sprintf("rueidisbench:sess:%d", g)
		if err := s.create(ctx, k); err != nil {
			return nil, err
		}
		s.keys = append(s.keys, k)
	}
	return s, nil
}

// create writes the session's ten fields and its expiry in one pipeline.
func (s *rueidisSessions) create(ctx context.Context, key string) error {
	hset := s.c.B().Hset().Key(key).FieldValue()
	for i := 0; i < len(s.fields); i += 2 {
		hset = hset.FieldValue(s.fields[i], s.fields[i+1])
	}
	for _, r := range s.c.DoMulti(ctx, hset.Build(), s.c.B().Pexpire().Key(key).Milliseconds(coord.DefaultSessionTTL.Milliseconds()).Build()) {
		if err := r.Error(); err != nil {
			return err
		}
	}
	return nil
}

func (s *rueidisSessions) ops() map[string]op {
	return map[string]op{
		"create": func(ctx context.Context, _, _ int) error {
			return s.create(ctx, "rueidisbench:sess:new:"+token())
		},
		"get": func(ctx context.Context, g, _ int) error {
			m, err := s.c.Do(ctx, s.c.B().Hgetall().Key(s.keys[g]).Build()).AsStrMap()
			if err == nil && len(m) == 0 {
				err = errors.New("rueidis HGETALL: empty")
			}
			return err
		},
		"update": func(ctx context.Context, g, i int) error {
			// updateData(i), encoded as encodeFields does.
			return s.c.Do(ctx, s.c.B().Hset().Key(s.keys[g]).FieldValue().
				FieldValue("visits", strconv.Itoa(i)).FieldValue("locale", `"de-DE"`).Build()).Error()
		},
	}
}
