package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// sessionData is the session of the test: ten fields of mixed types.
func sessionData() map[string]any {
	return map[string]any{
		"name":     "Ann Example",
		"email":    "ann@example.com",
		"id":       int64(1234567890123456789),
		"roles":    []string{"admin", "dev"},
		"prefs":    map[string]any{"theme": "dark", "lang": "en"},
		"visits":   42,
		"verified": true,
		"locale":   "en-GB",
		"cart":     []int{101, 202, 303},
		"plan":     "pro",
	}
}

// updateData is what each Update writes: two of the fields.
func updateData(i int) map[string]any {
	return map[string]any{"visits": i, "locale": "de-DE"}
}

// sessionOps holds the session contenders: coord's SessionStore on its
// own Backend, and raw go-redis on its own client doing the same reads
// and writes of a 10-field hash.
type sessionOps struct {
	be      *coordredis.Backend
	coordC  *goredis.Client
	rawC    *goredis.Client
	tokens  []string // one coord session per goroutine
	rawKeys []string // one raw hash per goroutine
	getKeys []string // the hash of each coord session, read raw
}

func newSessionOps(ctx context.Context, srv *server, goroutines int) (*sessionOps, error) {
	s := &sessionOps{coordC: srv.newClient(), rawC: srv.newClient()}
	be, err := coordredis.New(s.coordC, &coordredis.Options{Prefix: "bench:"})
	if err != nil {
		return nil, err
	}
	s.be = be
	for g := range goroutines {
		sess, err := be.Sessions().Create(ctx, fmt.Sprintf("user-%d", g), sessionData())
		if err != nil {
			return nil, err
		}
		s.tokens = append(s.tokens, sess.ID)
		// The session's hash, as backend/redis lays it out (see its
		// package documentation): read raw for the Get baseline.
		key := "bench:{s}:s:" + sess.Handle
		n, err := s.rawC.HLen(ctx, key).Result()
		if err != nil || n < 10 {
			return nil, fmt.Errorf("session hash %q has %d fields (%v): the key layout changed", "bench:{s}:s:<handle>", n, err)
		}
		s.getKeys = append(s.getKeys, key)
		rk := fmt.Sprintf("rawbench:sess:%d", g)
		if err := s.rawCreate(ctx, rk); err != nil {
			return nil, err
		}
		s.rawKeys = append(s.rawKeys, rk)
	}
	return s, nil
}

func (s *sessionOps) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.be.Close(ctx)
	s.coordC.Close()
	s.rawC.Close()
}

// encodeFields JSON-encodes each value, as a raw client storing the same
// data must.
func encodeFields(data map[string]any) ([]any, error) {
	args := make([]any, 0, 2*len(data))
	for k, v := range data {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		args = append(args, k, string(b))
	}
	return args, nil
}

// rawCreate writes the session's ten fields and its expiry in one
// pipeline.
func (s *sessionOps) rawCreate(ctx context.Context, key string) error {
	args, err := encodeFields(sessionData())
	if err != nil {
		return err
	}
	p := s.rawC.Pipeline()
	p.HSet(ctx, key, args...)
	p.PExpire(ctx, key, coord.DefaultSessionTTL)
	_, err = p.Exec(ctx)
	return err
}

// op is one operation of goroutine g, its i-th.
type op func(ctx context.Context, g, i int) error

func (s *sessionOps) ops() map[string]map[string]op {
	return map[string]map[string]op{
		"create": {
			"coord": func(ctx context.Context, g, _ int) error {
				_, err := s.be.Sessions().Create(ctx, fmt.Sprintf("user-%d", g), sessionData())
				return err
			},
			"raw": func(ctx context.Context, g, _ int) error {
				return s.rawCreate(ctx, "rawbench:sess:new:"+token())
			},
		},
		"get": {
			"coord": func(ctx context.Context, g, _ int) error {
				_, err := s.be.Sessions().Get(ctx, s.tokens[g])
				return err
			},
			"raw": func(ctx context.Context, g, _ int) error {
				m, err := s.rawC.HGetAll(ctx, s.getKeys[g]).Result()
				if err == nil && len(m) == 0 {
					err = errors.New("raw HGETALL: empty")
				}
				return err
			},
		},
		"update": {
			"coord": func(ctx context.Context, g, i int) error {
				return s.be.Sessions().Update(ctx, s.tokens[g], updateData(i))
			},
			"raw": func(ctx context.Context, g, i int) error {
				args, err := encodeFields(updateData(i))
				if err != nil {
					return err
				}
				return s.rawC.HSet(ctx, s.rawKeys[g], args...).Err()
			},
		},
	}
}

// runOps runs fn on goroutines goroutines for d and reports ops/s and
// the p50 and p99 of one call.
func runOps(ctx context.Context, fn op, goroutines int, d time.Duration) (metrics, error) {
	parts := make([]samples, goroutines)
	errs := make([]error, goroutines)
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			lat := make(samples, 0, 4096)
			for i := 0; ctx.Err() == nil; i++ {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				if err := fn(ctx, g, i); err != nil {
					errs[g] = err
					break
				}
				lat = append(lat, time.Since(t0))
			}
			parts[g] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	all := merge(parts)
	return metrics{
		"ops/s": float64(len(all)) / elapsed.Seconds(),
		"p50":   percentile(all, 0.50),
		"p99":   percentile(all, 0.99),
	}, nil
}
