package redis

import (
	"slices"
	"testing"
)

// rwKeys names the keys and channel of a read-write resource as
// docs/WIRE.md and doc.go say, escaped names included, in one allocation
// for the names (and one for the slice).
func TestRWKeys(t *testing.T) {
	for _, c := range []struct{ prefix, resource, base string }{
		{"cgn:", "cfg", "cgn:rw:{cfg}"},
		{"", "a", "rw:{a}"},
		{"p:", "x{y}%z *", "p:rw:{x%7By%7D%25z%20%2A}"},
	} {
		keys, ch := keyspace{prefix: c.prefix}.rwKeys(c.resource)
		want := []string{c.base + ":w", c.base + ":fence", c.base + ":r", c.base + ":q"}
		if !slices.Equal(keys, want) || ch != c.base+":wake" {
			t.Errorf("rwKeys(%q) with prefix %q = %q, %q; want %q, %q", c.resource, c.prefix, keys, ch, want, c.base+":wake")
		}
	}
	k := keyspace{prefix: "cgn:"}
	if n := testing.AllocsPerRun(100, func() { k.rwKeys("cfg") }); n > 2 {
		t.Errorf("rwKeys: %v allocations; want at most 2", n)
	}
}
