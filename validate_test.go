package coord_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
)

// testdata/glob_redis.txt holds, for every pattern and string in it,
// whether redis-server 7.0 lists the string as a key for KEYS pattern:
// the matcher Redis also uses for PSUBSCRIBE.
func TestMatchGlobAgreesWithRedis(t *testing.T) {
	f, err := os.Open("testdata/glob_redis.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var pattern, s string
		var want int
		fields := splitQuoted(t, sc.Text())
		pattern, s = fields[0], fields[1]
		want, err = strconv.Atoi(fields[2])
		if err != nil {
			t.Fatal(err)
		}
		if got := coord.MatchGlob(pattern, s); got != (want == 1) {
			t.Errorf("MatchGlob(%q, %q) = %v, Redis says %v", pattern, s, got, want == 1)
		}
		n++
	}
	if n < 1000 {
		t.Fatalf("read %d cases, want the whole corpus", n)
	}
}

func splitQuoted(t *testing.T, line string) []string {
	t.Helper()
	var out []string
	for len(line) > 0 {
		line = strings.TrimLeft(line, " ")
		if line[0] != '"' {
			out = append(out, line)
			break
		}
		q, err := strconv.QuotedPrefix(line)
		if err != nil {
			t.Fatalf("bad corpus line %q: %v", line, err)
		}
		s, _ := strconv.Unquote(q)
		out = append(out, s)
		line = line[len(q):]
	}
	if len(out) != 3 {
		t.Fatalf("bad corpus line: %q", out)
	}
	return out
}

func TestMatchGlobSlashIsOrdinary(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"user:*", "user:a/b", true},
		{"*", "a/b/c", true},
		{"a?c", "a/c", true},
		{"user:*", "session:1", false},
		{"[a-c]x", "bx", true},
		{"[^a-c]x", "bx", false},
		{"\\*", "*", true},
		{"\\*", "a", false},
	} {
		if got := coord.MatchGlob(c.p, c.s); got != c.want {
			t.Errorf("MatchGlob(%q, %q) = %v, want %v", c.p, c.s, got, c.want)
		}
	}
}

func TestValidateName(t *testing.T) {
	good := []string{"a", "user:1", "with space", "{braces}", "glob*?[x]", strings.Repeat("x", coord.MaxNameLen), "café"}
	for _, n := range good {
		if err := coord.ValidateName("name", n); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", n, err)
		}
	}
	bad := []string{"", strings.Repeat("x", coord.MaxNameLen+1), "a\nb", "a\rb", "nul\x00", "del\x7f", "\xff\xfe"}
	for _, n := range bad {
		if err := coord.ValidateName("name", n); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("ValidateName(%q) = %v, want ErrInvalid", n, err)
		}
	}
}

func TestValidateGlob(t *testing.T) {
	for _, g := range []string{"*", "user:*", "a[bc]d", "a[^b]", "a\\[", "[]]", "x[a-z]*", "a\\\\"} {
		if err := coord.ValidateGlob(g); err != nil {
			t.Errorf("ValidateGlob(%q) = %v, want nil", g, err)
		}
	}
	for _, g := range []string{"", "a[bc", "[", "a\\", "x[\\]", "a\nb", strings.Repeat("*", coord.MaxNameLen+1)} {
		if err := coord.ValidateGlob(g); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("ValidateGlob(%q) = %v, want ErrInvalid", g, err)
		}
	}
}

func TestValidateTTL(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second, time.Microsecond} {
		if err := coord.ValidateTTL("ttl", d); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("ValidateTTL(%v) = %v, want ErrInvalid", d, err)
		}
	}
	if err := coord.ValidateTTL("ttl", time.Millisecond); err != nil {
		t.Errorf("ValidateTTL(1ms) = %v", err)
	}
}

func TestEncodePayload(t *testing.T) {
	raw, err := coord.EncodePayload(map[string]any{"id": int64(1234567890123456789), "s": "x"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != `{"id":1234567890123456789,"s":"x"}` {
		t.Fatalf("EncodePayload = %s", raw)
	}
	raw, err = coord.EncodePayload(json.RawMessage(` { "a" : [1, 2] } `), 0)
	if err != nil || string(raw) != `{"a":[1,2]}` {
		t.Fatalf("EncodePayload(raw) = %s, %v; want compacted JSON", raw, err)
	}
	if raw, err := coord.EncodePayload(nil, 0); err != nil || string(raw) != "null" {
		t.Fatalf("EncodePayload(nil) = %s, %v", raw, err)
	}
	for name, v := range map[string]any{
		"channel":   make(chan int),
		"NaN":       math.NaN(),
		"bad raw":   json.RawMessage(`{"a":`),
		"too large": strings.Repeat("x", 100),
	} {
		if _, err := coord.EncodePayload(v, 64); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("EncodePayload(%s) = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := coord.EncodePayload(strings.Repeat("x", coord.DefaultMaxPayload), 0); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("payload over the default limit: %v, want ErrInvalid", err)
	}
}

func TestEncodeData(t *testing.T) {
	sets, dels, err := coord.EncodeData(map[string]any{"a": 1, "b": nil, "c": "x"}, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 || string(sets["a"]) != "1" || string(sets["c"]) != `"x"` || len(dels) != 1 || dels[0] != "b" {
		t.Fatalf("EncodeData = %v %v", sets, dels)
	}
	sets, dels, err = coord.EncodeData(map[string]any{"b": nil}, false, 0)
	if err != nil || len(sets) != 0 || len(dels) != 0 {
		t.Fatalf("EncodeData without deletes = %v %v %v; want nil dropped", sets, dels, err)
	}
	for name, d := range map[string]map[string]any{
		"empty key":   {"": 1},
		"control key": {"a\nb": 1},
		"bad value":   {"a": make(chan int)},
		"too large":   {"a": strings.Repeat("x", 40), "b": strings.Repeat("y", 40)},
	} {
		if _, _, err := coord.EncodeData(d, true, 64); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("EncodeData(%s) = %v, want ErrInvalid", name, err)
		}
	}
}

func TestLockOptions(t *testing.T) {
	o, err := coord.NewLockOptions()
	if err != nil || o.TTL != 10*time.Second || o.Retries != 3 || o.RetryDelay != 100*time.Millisecond || o.AutoRenew {
		t.Fatalf("defaults = %+v, %v", o, err)
	}
	o, err = coord.NewLockOptions(coord.WithTTL(time.Second), coord.WithWait(0), coord.WithAutoRenew(), nil)
	if err != nil || o.TTL != time.Second || o.Retries != -1 || o.RetryDelay != coord.DefaultRetryDelay || !o.AutoRenew {
		t.Fatalf("options = %+v, %v", o, err)
	}
	for _, bad := range [][]coord.LockOption{
		{coord.WithTTL(0)},
		{coord.WithTTL(-time.Second)},
		{coord.WithRetry(-2, time.Millisecond)},
		{coord.WithRetry(1, -time.Millisecond)},
	} {
		if _, err := coord.NewLockOptions(bad...); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("NewLockOptions(bad) = %v, want ErrInvalid", err)
		}
	}
}

func TestSessionOptions(t *testing.T) {
	o, err := coord.NewSessionOptions(coord.SessionOptions{})
	if err != nil || o.IdleTTL != 24*time.Hour || o.Lifetime != 0 {
		t.Fatalf("defaults = %+v, %v", o, err)
	}
	o, err = coord.NewSessionOptions(coord.SessionOptions{IdleTTL: time.Hour, Lifetime: 8 * time.Hour}, coord.WithIdleTTL(time.Minute))
	if err != nil || o.IdleTTL != time.Minute || o.Lifetime != 8*time.Hour {
		t.Fatalf("store defaults = %+v, %v", o, err)
	}
	for _, bad := range []coord.SessionOption{coord.WithIdleTTL(0), coord.WithLifetime(0), coord.WithLifetime(-time.Hour)} {
		if _, err := coord.NewSessionOptions(coord.SessionOptions{}, bad); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("NewSessionOptions(bad) = %v, want ErrInvalid", err)
		}
	}
}

func TestSubscribeOptions(t *testing.T) {
	o, err := coord.NewSubscribeOptions()
	if err != nil || o.QueueSize != coord.DefaultQueueSize || o.IncludeOwn || o.Key != "" {
		t.Fatalf("defaults = %+v, %v", o, err)
	}
	o, err = coord.NewSubscribeOptions(coord.IncludeOwn(), coord.OnlyKey("k"), coord.WithQueueSize(4))
	if err != nil || !o.IncludeOwn || o.Key != "k" || o.QueueSize != 4 {
		t.Fatalf("options = %+v, %v", o, err)
	}
	for _, bad := range []coord.SubscribeOption{coord.WithQueueSize(0), coord.OnlyKey("a\nb")} {
		if _, err := coord.NewSubscribeOptions(bad); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("NewSubscribeOptions(bad) = %v, want ErrInvalid", err)
		}
	}
}

func TestInvalidationMatches(t *testing.T) {
	key := coord.Invalidation{Kind: coord.KeyInvalidation, Key: "user:1"}
	pat := coord.Invalidation{Kind: coord.PatternInvalidation, Key: "user:*"}
	all := coord.Invalidation{Kind: coord.PurgeAll}
	if !key.Matches("user:1") || key.Matches("user:2") || !pat.Matches("user:a/b") || pat.Matches("session:1") || !all.Matches("anything") {
		t.Fatal("Invalidation.Matches disagrees with its kinds")
	}
	if (coord.Invalidation{}).Matches("x") {
		t.Fatal("zero Invalidation matches")
	}
}

func TestErrExpiredIsNotHeld(t *testing.T) {
	if !errors.Is(coord.ErrExpired, coord.ErrNotHeld) || errors.Is(coord.ErrNotHeld, coord.ErrExpired) {
		t.Fatal("ErrExpired must wrap ErrNotHeld, not the reverse")
	}
}

func TestSessionDecode(t *testing.T) {
	s := &coord.Session{Data: map[string]json.RawMessage{"id": json.RawMessage("1234567890123456789")}}
	var id int64
	if err := s.Decode("id", &id); err != nil || id != 1234567890123456789 {
		t.Fatalf("Decode = %d, %v", id, err)
	}
	if err := s.Decode("missing", &id); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("Decode(missing) = %v, want ErrNotFound", err)
	}
}
