package coord_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

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
