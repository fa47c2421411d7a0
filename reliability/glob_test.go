package reliability

import (
	"bufio"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/internal/redistest"
)

// globCase is one line of testdata/glob_redis.txt: whether redis-server
// listed string as a key for KEYS pattern.
type globCase struct {
	pattern, s string
	keys       bool
}

func readGlobCorpus(t *testing.T) []globCase {
	t.Helper()
	f, err := os.Open("../testdata/glob_redis.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []globCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var fields []string
		for len(fields) < 2 {
			line = strings.TrimLeft(line, " ")
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				t.Fatalf("bad corpus line %q: %v", sc.Text(), err)
			}
			s, _ := strconv.Unquote(q)
			fields = append(fields, s)
			line = line[len(q):]
		}
		out = append(out, globCase{fields[0], fields[1], strings.TrimSpace(line) == "1"})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMatchGlobAgreesWithPSubscribe subscribes a real redis-server
// connection to every pattern of the corpus with PSUBSCRIBE, publishes on
// a channel named by every string of the corpus, and compares what Redis
// delivered with coord.MatchGlob for every pattern × string pair (not
// only the corpus's pairs, which were recorded with KEYS).
func TestMatchGlobAgreesWithPSubscribe(t *testing.T) {
	corpus := readGlobCorpus(t)
	patterns, strs := map[string]bool{}, map[string]bool{"": true, "user:1\x00x": true}
	for _, c := range corpus {
		patterns[c.pattern] = true
		strs[c.s] = true
	}
	// And generated ones, from an alphabet heavy in metacharacters
	// (fixed seed: the same pairs every run).
	rng := rand.New(rand.NewPCG(6, 6))
	const alphabet = "ab*?[]^-\\:/\xff"
	gen := func(max int) string {
		b := make([]byte, 1+rng.IntN(max))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for len(patterns) < 400 {
		patterns[gen(8)] = true
	}
	for len(strs) < 250 {
		strs[strings.NewReplacer("*", "a", "?", "b").Replace(gen(6))] = true
		strs[gen(6)] = true
	}
	const marker = "reliability:end-of-corpus"
	srv := redistest.Start(t)
	sub := srv.Client(t)
	pub := srv.Client(t)
	ctx := t.Context()
	ps := sub.PSubscribe(ctx)
	defer ps.Close()
	plist := append(slices.Sorted(func(yield func(string) bool) {
		for p := range patterns {
			if !yield(p) {
				return
			}
		}
	}), marker)
	if err := ps.PSubscribe(ctx, plist...); err != nil {
		t.Fatal(err)
	}
	for confirmed := 0; confirmed < len(plist); {
		msg, err := ps.ReceiveTimeout(ctx, 10*time.Second)
		if err != nil {
			t.Fatalf("waiting for PSUBSCRIBE confirmations (%d of %d): %v", confirmed, len(plist), err)
		}
		if s, ok := msg.(*goredis.Subscription); ok && s.Kind == "psubscribe" {
			confirmed++
		}
	}
	pipe := pub.Pipeline()
	for s := range strs {
		pipe.Publish(ctx, s, "x")
	}
	pipe.Publish(ctx, marker, "end")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	type pair struct{ pattern, s string }
	delivered := map[pair]bool{}
	for {
		msg, err := ps.ReceiveTimeout(ctx, 10*time.Second)
		if err != nil {
			t.Fatalf("waiting for deliveries (%d so far): %v", len(delivered), err)
		}
		m, ok := msg.(*goredis.Message)
		if !ok {
			continue
		}
		if m.Channel == marker {
			if m.Pattern == marker {
				break
			}
			continue
		}
		delivered[pair{m.Pattern, m.Channel}] = true
	}
	mismatches := 0
	for p := range patterns {
		for s := range strs {
			want := delivered[pair{p, s}]
			if got := coord.MatchGlob(p, s); got != want {
				mismatches++
				if mismatches <= 20 {
					t.Errorf("MatchGlob(%q, %q) = %v, PSUBSCRIBE delivered: %v", p, s, got, want)
				}
			}
		}
	}
	keysDiffer := 0
	for _, c := range corpus {
		if delivered[pair{c.pattern, c.s}] != c.keys {
			keysDiffer++
			t.Logf("PSUBSCRIBE and the recorded KEYS differ on %q, %q: PSUBSCRIBE %v, KEYS %v",
				c.pattern, c.s, delivered[pair{c.pattern, c.s}], c.keys)
		}
	}
	if mismatches > 0 {
		t.Errorf("%d mismatches in total", mismatches)
	}
	t.Logf("%d patterns × %d channels = %d pairs compared with PSUBSCRIBE (%d delivered), %d mismatches; %d corpus lines where PSUBSCRIBE and KEYS differ",
		len(patterns), len(strs), len(patterns)*len(strs), len(delivered), mismatches, keysDiffer)
}
