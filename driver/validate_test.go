package driver_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

func TestValidateName(t *testing.T) {
	good := []string{"a", "user:1", "with space", "{braces}", "glob*?[x]", strings.Repeat("x", coord.MaxNameLen), "café"}
	for _, n := range good {
		if err := driver.ValidateName("name", n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", n, err)
		}
	}
	bad := []string{"", strings.Repeat("x", coord.MaxNameLen+1), "a\nb", "a\rb", "nul\x00", "del\x7f", "\xff\xfe"}
	for _, n := range bad {
		if err := driver.ValidateName("name", n); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalid", n, err)
		}
	}
}

func TestValidateGlob(t *testing.T) {
	for _, g := range []string{"*", "user:*", "a[bc]d", "a[^b]", "a\\[", "[]]", "x[a-z]*", "a\\\\"} {
		if err := driver.ValidateGlob(g); err != nil {
			t.Errorf("ValidateGlob(%q) = %v, want nil", g, err)
		}
	}
	for _, g := range []string{"", "a[bc", "[", "a\\", "x[\\]", "a\nb", strings.Repeat("*", coord.MaxNameLen+1)} {
		if err := driver.ValidateGlob(g); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("ValidateGlob(%q) = %v, want ErrInvalid", g, err)
		}
	}
}

func TestValidateTTL(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second, time.Microsecond} {
		if err := driver.ValidateTTL("ttl", d); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("ValidateTTL(%v) = %v, want ErrInvalid", d, err)
		}
	}
	if err := driver.ValidateTTL("ttl", time.Millisecond); err != nil {
		t.Errorf("ValidateTTL(1ms) = %v", err)
	}
}

func TestEncodePayload(t *testing.T) {
	raw, err := driver.EncodePayload(map[string]any{"id": int64(1234567890123456789), "s": "x"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != `{"id":1234567890123456789,"s":"x"}` {
		t.Fatalf("EncodePayload = %s", raw)
	}
	raw, err = driver.EncodePayload(json.RawMessage(` { "a" : [1, 2] } `), 0)
	if err != nil || string(raw) != `{"a":[1,2]}` {
		t.Fatalf("EncodePayload(raw) = %s, %v; want compacted JSON", raw, err)
	}
	if raw, err := driver.EncodePayload(nil, 0); err != nil || string(raw) != "null" {
		t.Fatalf("EncodePayload(nil) = %s, %v", raw, err)
	}
	for name, v := range map[string]any{
		"channel":   make(chan int),
		"NaN":       math.NaN(),
		"bad raw":   json.RawMessage(`{"a":`),
		"too large": strings.Repeat("x", 100),
	} {
		if _, err := driver.EncodePayload(v, 64); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("EncodePayload(%s) = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := driver.EncodePayload(strings.Repeat("x", driver.DefaultMaxPayload), 0); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("payload over the default limit: %v, want ErrInvalid", err)
	}
}

func TestEncodeData(t *testing.T) {
	sets, dels, err := driver.EncodeData(map[string]any{"a": 1, "b": nil, "c": "x"}, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 || string(sets["a"]) != "1" || string(sets["c"]) != `"x"` || len(dels) != 1 || dels[0] != "b" {
		t.Fatalf("EncodeData = %v %v", sets, dels)
	}
	sets, dels, err = driver.EncodeData(map[string]any{"b": nil}, false, 0)
	if err != nil || len(sets) != 0 || len(dels) != 0 {
		t.Fatalf("EncodeData without deletes = %v %v %v; want nil dropped", sets, dels, err)
	}
	for name, d := range map[string]map[string]any{
		"empty key":   {"": 1},
		"control key": {"a\nb": 1},
		"bad value":   {"a": make(chan int)},
		"too large":   {"a": strings.Repeat("x", 40), "b": strings.Repeat("y", 40)},
	} {
		if _, _, err := driver.EncodeData(d, true, 64); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("EncodeData(%s) = %v, want ErrInvalid", name, err)
		}
	}
}

func TestLockOptions(t *testing.T) {
	o, err := driver.NewLockOptions()
	if err != nil || o.TTL != 10*time.Second || o.Retries != 3 || o.RetryDelay != 100*time.Millisecond || o.AutoRenew {
		t.Fatalf("defaults = %+v, %v", o, err)
	}
	o, err = driver.NewLockOptions(coord.WithTTL(time.Second), coord.WithWait(0), coord.WithAutoRenew(), nil)
	if err != nil || o.TTL != time.Second || o.Retries != -1 || o.RetryDelay != coord.DefaultRetryDelay || !o.AutoRenew {
		t.Fatalf("options = %+v, %v", o, err)
	}
	for _, bad := range [][]coord.LockOption{
		{coord.WithTTL(0)},
		{coord.WithTTL(-time.Second)},
		{coord.WithRetry(-2, time.Millisecond)},
		{coord.WithRetry(1, -time.Millisecond)},
	} {
		if _, err := driver.NewLockOptions(bad...); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("NewLockOptions(bad) = %v, want ErrInvalid", err)
		}
	}
}

func TestSessionOptions(t *testing.T) {
	o, err := driver.NewSessionOptions(coord.SessionOptions{})
	if err != nil || o.IdleTTL != 24*time.Hour || o.Lifetime != 0 {
		t.Fatalf("defaults = %+v, %v", o, err)
	}
	o, err = driver.NewSessionOptions(coord.SessionOptions{IdleTTL: time.Hour, Lifetime: 8 * time.Hour}, coord.WithIdleTTL(time.Minute))
	if err != nil || o.IdleTTL != time.Minute || o.Lifetime != 8*time.Hour {
		t.Fatalf("store defaults = %+v, %v", o, err)
	}
	for _, bad := range []coord.SessionOption{coord.WithIdleTTL(0), coord.WithLifetime(0), coord.WithLifetime(-time.Hour)} {
		if _, err := driver.NewSessionOptions(coord.SessionOptions{}, bad); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("NewSessionOptions(bad) = %v, want ErrInvalid", err)
		}
	}
}

func TestSubscribeOptions(t *testing.T) {
	o, err := driver.NewSubscribeOptions()
	if err != nil || o.QueueSize != coord.DefaultQueueSize || o.IncludeOwn || o.Key != "" {
		t.Fatalf("defaults = %+v, %v", o, err)
	}
	o, err = driver.NewSubscribeOptions(coord.IncludeOwn(), coord.OnlyKey("k"), coord.WithQueueSize(4))
	if err != nil || !o.IncludeOwn || o.Key != "k" || o.QueueSize != 4 {
		t.Fatalf("options = %+v, %v", o, err)
	}
	for _, bad := range []coord.SubscribeOption{coord.WithQueueSize(0), coord.OnlyKey("a\nb")} {
		if _, err := driver.NewSubscribeOptions(bad); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("NewSubscribeOptions(bad) = %v, want ErrInvalid", err)
		}
	}
}
