package cache

import "sync"

// executor runs the underlying otter cache's maintenance (draining its
// read and write buffers, evicting, expiring) on one goroutine of its
// own, so that readers do not pay for it, as otter's default executor
// does, but with an owner: stop ends the goroutine and waits for it.
//
// submit never blocks: when the queue is full, or after stop, it runs the
// task on the caller's goroutine (the caller-runs policy otter's
// Options.Executor documentation asks for). Every accepted task runs.
type executor struct {
	mu      sync.Mutex
	stopped bool
	tasks   chan func()
	done    chan struct{}
}

func newExecutor() *executor {
	e := &executor{tasks: make(chan func(), 16), done: make(chan struct{})}
	go e.run()
	return e
}

func (e *executor) run() {
	defer close(e.done)
	for fn := range e.tasks {
		fn()
	}
}

func (e *executor) submit(fn func()) {
	e.mu.Lock()
	if !e.stopped {
		select {
		case e.tasks <- fn:
			e.mu.Unlock()
			return
		default:
		}
	}
	e.mu.Unlock()
	fn()
}

// stop runs the queued tasks, ends the goroutine and waits for it. Later
// tasks run on their caller's goroutine. stop is idempotent.
func (e *executor) stop() {
	e.mu.Lock()
	if !e.stopped {
		e.stopped = true
		close(e.tasks)
	}
	e.mu.Unlock()
	<-e.done
}
