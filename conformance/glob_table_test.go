package conformance

import (
	"path"
	"slices"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/driver"
)

// TestGlobTable checks the suite's expectations against coord.MatchGlob,
// the transcription of Redis's matcher, and that the table exercises
// where Redis and path.Match differ.
func TestGlobTable(t *testing.T) {
	differs := false
	for _, c := range globCases {
		if err := driver.ValidateGlob(c.pattern); err != nil {
			t.Errorf("pattern %q: %v", c.pattern, err)
		}
		for _, k := range globKeys {
			want := slices.Contains(c.matches, k)
			if got := coord.MatchGlob(c.pattern, k); got != want {
				t.Errorf("MatchGlob(%q, %q) = %v, table says %v", c.pattern, k, got, want)
			}
			if pm, err := path.Match(c.pattern, k); err != nil || pm != want {
				differs = true
			}
		}
		for _, m := range c.matches {
			if !slices.Contains(globKeys, m) {
				t.Errorf("pattern %q lists %q, which is not a subscribed key", c.pattern, m)
			}
		}
	}
	if !differs {
		t.Errorf("the table does not tell Redis's glob from path.Match")
	}
}
