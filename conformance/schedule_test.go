package conformance

import (
	"flag"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestRunGroupsSchedule checks the schedule of Run: every serial case
// runs alone (no other case of any group at the same time) and before any
// parallel case, and the parallel cases of different groups run together.
func TestRunGroupsSchedule(t *testing.T) {
	if f := flag.Lookup("test.parallel"); f != nil {
		if n, _ := strconv.Atoi(f.Value.String()); n < 3 {
			t.Skipf("-parallel %d: the parallel cases of three groups cannot all run at once", n)
		}
	}
	var (
		mu       sync.Mutex
		active   = map[string]bool{} // running cases
		started  = map[string]bool{} // groups with a parallel case started
		ran      []string
		problems []string
	)
	serial := func(grp, name string) testCase {
		return testCase{name: name, serial: true, run: func(t *testing.T, _ Harness) {
			mu.Lock()
			if len(active) > 0 || len(started) > 0 {
				problems = append(problems, fmt.Sprintf("serial %s/%s ran with %v running, parallel cases of %v started", grp, name, active, started))
			}
			active[grp+"/"+name] = true
			mu.Unlock()
			// Long enough for a case wrongly run at the same time to be
			// seen by one of the two.
			hold(t.Context(), 20*time.Millisecond)
			mu.Lock()
			delete(active, grp+"/"+name)
			ran = append(ran, grp+"/"+name)
			mu.Unlock()
		}}
	}
	parallel := func(grp, name string) testCase {
		return testCase{name: name, run: func(t *testing.T, _ Harness) {
			mu.Lock()
			active[grp+"/"+name] = true
			started[grp] = true
			mu.Unlock()
			// Every group's parallel cases start before this one ends.
			ok := within(2*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(started) == 3
			})
			mu.Lock()
			if !ok {
				problems = append(problems, fmt.Sprintf("parallel %s/%s: the parallel cases of only %v started within 2s", grp, name, started))
			}
			delete(active, grp+"/"+name)
			ran = append(ran, grp+"/"+name)
			mu.Unlock()
		}}
	}
	groups := []group{
		{"A", []testCase{serial("A", "s1"), parallel("A", "p1"), serial("A", "s2"), parallel("A", "p2")}},
		{"B", []testCase{parallel("B", "p1"), serial("B", "s1")}},
		{"C", []testCase{serial("C", "s1"), parallel("C", "p1")}},
	}
	t.Run("Suite", func(t *testing.T) {
		runGroups(t, func(*testing.T) Harness { return bareHarness{} }, groups)
	})
	for _, p := range problems {
		t.Error(p)
	}
	if len(ran) != 8 {
		t.Errorf("ran %v, want the 8 cases", ran)
	}
	if t.Failed() {
		return
	}
	want := []string{"A/s1", "A/s2", "B/s1", "C/s1"}
	for i, w := range want {
		if ran[i] != w {
			t.Fatalf("order %v: want the serial cases first, group after group, in their order: %v", ran, want)
		}
	}
}
