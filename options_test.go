package coord_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// negativeDurations are durations no option may take; -1ns is the one an
// internal "not set" marker would let through.
var negativeDurations = []time.Duration{-1, -2, -time.Millisecond, -time.Hour, math.MinInt64}

// TestSessionOptionsRefuseEveryNegative: no negative duration, -1ns
// included, reads as "not set"; each is ErrInvalid, over any defaults.
func TestSessionOptionsRefuseEveryNegative(t *testing.T) {
	defaults := []coord.SessionOptions{{}, {IdleTTL: time.Hour, Lifetime: 8 * time.Hour}}
	for _, def := range defaults {
		for _, d := range negativeDurations {
			for name, opt := range map[string]coord.SessionOption{
				"WithLifetime": coord.WithLifetime(d),
				"WithIdleTTL":  coord.WithIdleTTL(d),
			} {
				o, err := coord.NewSessionOptions(def, opt)
				if !errors.Is(err, coord.ErrInvalid) {
					t.Errorf("%s(%d) over defaults %+v = %+v, %v; want ErrInvalid", name, int64(d), def, o, err)
				}
			}
		}
	}
}

// TestSessionOptionsDefaults: an option not given keeps the store's
// default; one given replaces it, the last one winning; bad defaults are
// refused.
func TestSessionOptionsDefaults(t *testing.T) {
	def := coord.SessionOptions{IdleTTL: time.Hour, Lifetime: 8 * time.Hour}
	o, err := coord.NewSessionOptions(def)
	if err != nil || o.IdleTTL != time.Hour || o.Lifetime != 8*time.Hour {
		t.Errorf("no options = %+v, %v; want the defaults", o, err)
	}
	o, err = coord.NewSessionOptions(def, coord.WithLifetime(time.Minute))
	if err != nil || o.IdleTTL != time.Hour || o.Lifetime != time.Minute {
		t.Errorf("WithLifetime(1m) = %+v, %v", o, err)
	}
	o, err = coord.NewSessionOptions(coord.SessionOptions{}, coord.WithLifetime(-1), coord.WithLifetime(time.Minute))
	if err != nil || o.Lifetime != time.Minute {
		t.Errorf("WithLifetime(-1) then WithLifetime(1m) = %+v, %v; want the last", o, err)
	}
	if _, err := coord.NewSessionOptions(coord.SessionOptions{}, coord.WithLifetime(time.Minute), coord.WithLifetime(-1)); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("WithLifetime(1m) then WithLifetime(-1) = %v; want ErrInvalid", err)
	}
	for _, bad := range []coord.SessionOptions{
		{IdleTTL: -1}, {Lifetime: -1}, {IdleTTL: -time.Hour}, {Lifetime: -time.Hour},
		{Lifetime: time.Microsecond}, {IdleTTL: time.Microsecond},
	} {
		if o, err := coord.NewSessionOptions(bad); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("defaults %+v = %+v, %v; want ErrInvalid", bad, o, err)
		}
	}
}

// TestLockOptionsRefuseNegatives: a negative retry count or delay is
// ErrInvalid, -1 included; only WithWait means "until ctx ends".
func TestLockOptionsRefuseNegatives(t *testing.T) {
	bad := map[string][]coord.LockOption{
		"WithRetry(-1, 10ms)":             {coord.WithRetry(-1, 10*time.Millisecond)},
		"WithRetry(-1, 0)":                {coord.WithRetry(-1, 0)},
		"WithRetry(MinInt, 0)":            {coord.WithRetry(math.MinInt, 0)},
		"WithWait then WithRetry(-1, 0)":  {coord.WithWait(0), coord.WithRetry(-1, 0)},
		"WithRetry(1, -1ns)":              {coord.WithRetry(1, -1)},
		"WithWait(-1ns)":                  {coord.WithWait(-1)},
		"WithWait(-1s)":                   {coord.WithWait(-time.Second)},
		"WithRetry(1, 1ms) then Wait(-1)": {coord.WithRetry(1, time.Millisecond), coord.WithWait(-1)},
	}
	for _, d := range negativeDurations {
		bad[fmt.Sprintf("WithTTL(%d)", int64(d))] = []coord.LockOption{coord.WithTTL(d)}
	}
	for name, opts := range bad {
		if o, err := coord.NewLockOptions(opts...); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s = %+v, %v; want ErrInvalid", name, o, err)
		}
	}
	o, err := coord.NewLockOptions(coord.WithRetry(2, time.Millisecond), coord.WithWait(0))
	if err != nil || o.Retries != -1 || o.RetryDelay != time.Millisecond {
		t.Errorf("WithRetry(2, 1ms) then WithWait(0) = %+v, %v; want a wait with 1ms between tries", o, err)
	}
	o, err = coord.NewLockOptions(coord.WithWait(time.Second), coord.WithRetry(2, time.Millisecond))
	if err != nil || o.Retries != 2 || o.RetryDelay != time.Millisecond {
		t.Errorf("WithWait(1s) then WithRetry(2, 1ms) = %+v, %v; want 2 retries", o, err)
	}
}

// TestSubscribeOptionsRefuseEmptyKey: OnlyKey("") is ErrInvalid like any
// other bad name, never "no filter"; queue sizes below 1 are refused.
func TestSubscribeOptionsRefuseEmptyKey(t *testing.T) {
	bad := map[string]coord.SubscribeOption{
		`OnlyKey("")`:           coord.OnlyKey(""),
		"OnlyKey(control char)": coord.OnlyKey("a\x00"),
		"OnlyKey(too long)":     coord.OnlyKey(strings.Repeat("k", coord.MaxNameLen+1)),
		"OnlyKey(not UTF-8)":    coord.OnlyKey("\xff"),
		"WithQueueSize(0)":      coord.WithQueueSize(0),
		"WithQueueSize(-1)":     coord.WithQueueSize(-1),
		"WithQueueSize(MinInt)": coord.WithQueueSize(math.MinInt),
	}
	for name, opt := range bad {
		if o, err := coord.NewSubscribeOptions(opt); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("%s = %+v, %v; want ErrInvalid", name, o, err)
		}
	}
	if _, err := coord.NewSubscribeOptions(coord.OnlyKey("k"), coord.OnlyKey("")); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf(`OnlyKey("k") then OnlyKey("") = %v; want ErrInvalid`, err)
	}
	o, err := coord.NewSubscribeOptions(coord.OnlyKey("k"))
	if err != nil || o.Key != "k" {
		t.Errorf(`OnlyKey("k") = %+v, %v`, o, err)
	}
}
