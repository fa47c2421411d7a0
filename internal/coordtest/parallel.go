package coordtest

import (
	"flag"
	"strconv"
)

// DefaultParallel makes n the default of -test.parallel, the number of
// parallel subtests that run at once, in place of GOMAXPROCS: a TestMain
// calls it before m.Run. A -parallel given on the command line is kept.
// It parses the command line (flag.Parse), which m.Run would do anyway.
//
// It is for the packages whose parallel subtests mostly wait (leases run
// out, messages travel, renewals tick): on a 2-core machine GOMAXPROCS
// lets only two of them wait at a time. The suites' bounds already hold
// with many cases at once: a machine with more cores runs that many.
func DefaultParallel(n int) {
	if !flag.Parsed() {
		flag.Parse()
	}
	set := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			set = true
		}
	})
	if !set && n > 0 {
		_ = flag.Set("test.parallel", strconv.Itoa(n))
	}
}

// SuiteParallel is the -test.parallel default ([DefaultParallel]) of the
// packages that run the conformance suite: its parallel cases spend most
// of their time waiting, and eight at once keep a loaded 2-core machine
// within the suite's bounds.
const SuiteParallel = 8
