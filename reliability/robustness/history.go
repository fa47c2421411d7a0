package robustness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Kinds of [Op].
const (
	KindLease    = "lease"     // one lease: acquire, fenced writes, release
	KindSessGet  = "sess.get"  // Get of one field of a shared session
	KindSessPut  = "sess.put"  // Update of one field (Value "" deletes it)
	KindSessLife = "sess.life" // Create then Delete of a worker's own session
	// KindSessCall is the invocation of a KindSessPut, written before the
	// call: a put whose worker was killed before it returned has no
	// KindSessPut, and counts as a put of unknown outcome.
	KindSessCall = "sess.call"
	KindRead     = "cache.read"
	KindSource   = "source.write" // a source-of-truth write and its invalidation
	KindEvent    = "event.recv"
	KindHealth   = "health"
	KindImmortal = "lease.immortal" // a released lease whose Done stayed open
	KindHeld     = "lease.held"     // leases still held after the workload stopped

	// The read-write lock, semaphore, election and stream workload.
	KindRW        = "rw"             // one read (Mode "read") or write (Mode "write") lease: acquire, hold, release
	KindPermit    = "sem"            // one semaphore permit (Num: the limit): acquire, hold, release
	KindLeader    = "leader"         // one leadership under RunElected: Fence is the term, Return when fn started
	KindObserve   = "elect.observe"  // one call of an Elector.Observe fn (Value: identity, "" for none; Fence: term)
	KindObserveTo = "elect.settled"  // after the stop: what the observer saw last, Err when it still saw a leader
	KindAppend    = "stream.append"  // one Append (Value: the entry's ID when it returned one)
	KindDeliver   = "stream.deliver" // one delivery to a handler (Value: ID, Num: deliveries, Call/Return: the handler's run)
	KindDrain     = "stream.drain"   // the group drained after the workload stopped (Num: pending + lag left)
	KindPresent   = "stream.present" // an entry the server holds at the end (written by the driver)
	KindDeadEntry = "stream.dead"    // a dead-lettered entry at the end (written by the driver)
)

// Op is one operation of a worker, as written to its history file. Times
// are Unix nanoseconds of the one machine's wall clock, shared by every
// process of a run.
type Op struct {
	Worker int    `json:"w"`
	Kind   string `json:"k"`
	Key    string `json:"key,omitempty"`
	Field  string `json:"f,omitempty"`
	Value  string `json:"v,omitempty"`
	Found  bool   `json:"found,omitempty"`
	Num    int64  `json:"n,omitempty"`
	Call   int64  `json:"call"`
	Return int64  `json:"ret"`
	Err    string `json:"err,omitempty"`

	// Lease fields.
	Mode       string `json:"mode,omitempty"`  // "withlock" or "acquire"
	Lease      string `json:"lease,omitempty"` // worker-local lease name (never the token)
	Fence      int64  `json:"fence,omitempty"`
	Live       int64  `json:"live,omitempty"` // last time the holder saw Done open and wrote
	RelCall    int64  `json:"relCall,omitempty"`
	RelReturn  int64  `json:"relRet,omitempty"`
	RelErr     string `json:"relErr,omitempty"`
	Writes     int    `json:"writes,omitempty"`
	Rejections int    `json:"rejected,omitempty"`
}

// Recorder appends Ops to a file as JSON lines. It is safe for concurrent
// use.
type Recorder struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	id   int
	sync bool // write each op at once (see OpenRecorder)
}

// NewRecorder creates path and returns a Recorder of worker id's
// operations.
func NewRecorder(path string, id int) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return &Recorder{f: f, w: bufio.NewWriter(f), id: id}, nil
}

// OpenRecorder opens path for appending (creating it) and returns a
// Recorder of worker id's operations that writes each op to the file as
// it is added: a worker killed with SIGKILL loses no recorded op and
// leaves no partial line, and the worker restarted in its place appends
// to the same history.
func OpenRecorder(path string, id int) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	return &Recorder{f: f, w: bufio.NewWriter(f), id: id, sync: true}, nil
}

// Add writes op, stamped with the recorder's worker.
func (r *Recorder) Add(op Op) {
	op.Worker = r.id
	b, err := json.Marshal(op)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = r.w.Write(append(b, '\n'))
	if r.sync {
		_ = r.w.Flush() // one write(2) of whole lines
	}
}

// Flush writes buffered operations to the file.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.w.Flush()
}

// Close flushes and closes the file.
func (r *Recorder) Close() error {
	err := r.Flush()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Now returns the current time as recorded in an Op.
func Now() int64 { return time.Now().UnixNano() }

// ReadHistory reads the JSON lines of r.
func ReadHistory(r io.Reader) ([]Op, error) {
	var ops []Op
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var op Op
		if err := json.Unmarshal(sc.Bytes(), &op); err != nil {
			return ops, fmt.Errorf("%w: history line %d: %v", ErrHistory, line, err)
		}
		ops = append(ops, op)
	}
	return ops, sc.Err()
}
