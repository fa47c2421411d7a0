package cache

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestExecutor(t *testing.T) {
	e := newExecutor()
	// A blocked task fills the worker; the queue takes 16 more; the rest
	// run on the caller's goroutine without blocking it.
	block := make(chan struct{})
	running := make(chan struct{})
	e.submit(func() { close(running); <-block })
	<-running
	var ran atomic.Int32
	var wg sync.WaitGroup
	wg.Add(40)
	inline := 0
	for range 40 {
		caller := make(chan struct{})
		e.submit(func() {
			ran.Add(1)
			wg.Done()
			select {
			case <-caller:
			default:
				inline++ // runs before submit returns: on this goroutine
			}
		})
		close(caller)
	}
	if inline != 40-16 {
		t.Fatalf("tasks run by the caller: got %d, want %d", inline, 40-16)
	}
	close(block)
	wg.Wait()
	e.stop()
	e.stop()
	// After stop, tasks run at once on the caller.
	done := false
	e.submit(func() { done = true })
	if !done || ran.Load() != 40 {
		t.Fatalf("after stop: done %v, ran %d", done, ran.Load())
	}
}
