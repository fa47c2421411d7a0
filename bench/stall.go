package main

import (
	"sync"
	"sync/atomic"
	"time"
)

// stallMonitor measures how late a goroutine that sleeps 1 ms wakes up:
// the longest lateness during a cell is a stall of this process (a loaded
// machine, GC), which every waiter in the cell suffered too. It tells a
// long wait caused by the machine from one caused by the mechanism.
type stallMonitor struct {
	worst atomic.Int64 // ns
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startStallMonitor() *stallMonitor {
	m := &stallMonitor{stop: make(chan struct{})}
	m.wg.Go(func() {
		const tick = time.Millisecond
		for {
			t0 := time.Now()
			select {
			case <-m.stop:
				return
			case <-time.After(tick):
			}
			if late := time.Since(t0) - tick; late > time.Duration(m.worst.Load()) {
				m.worst.Store(int64(late))
			}
		}
	})
	return m
}

// reset starts a new cell and returns the worst stall of the last one.
func (m *stallMonitor) reset() time.Duration { return time.Duration(m.worst.Swap(0)) }

func (m *stallMonitor) close() {
	close(m.stop)
	m.wg.Wait()
}
