package main

import (
	"math"
	"slices"
	"time"
)

// metrics are the figures of one contender in one round, by metric name.
type metrics map[string]float64

// percentile returns the p-quantile (0..1) of sorted durations in
// milliseconds, by nearest rank; NaN when there are none.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	i = min(max(i, 0), len(sorted)-1)
	return ms(sorted[i])
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median returns the median of vs, ignoring NaNs; NaN when none is left.
func median(vs []float64) float64 {
	s := make([]float64, 0, len(vs))
	for _, v := range vs {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// worst returns the largest of vs (or the smallest when low is true),
// ignoring NaNs.
func worst(vs []float64, low bool) float64 {
	w := math.NaN()
	for _, v := range vs {
		if math.IsNaN(v) {
			continue
		}
		if math.IsNaN(w) || (!low && v > w) || (low && v < w) {
			w = v
		}
	}
	return w
}

// samples collects durations from one goroutine; merged after the run.
type samples []time.Duration

func merge(parts []samples) []time.Duration {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]time.Duration, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	slices.Sort(out)
	return out
}
