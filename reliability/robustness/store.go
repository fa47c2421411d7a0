package robustness

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
)

// Store is the checking store that runs in the driver: the resource that
// lease holders write to with their fence, and the versioned source of
// truth the near caches load from. It is an HTTP server on 127.0.0.1.
//
//	POST /write?res=R&fence=F&lease=L  200 accepted, 409 stale fence
//	POST /source?key=K                 bumps K's version, returns it
//	GET  /source?key=K                 returns K's version
type Store struct {
	srv *http.Server
	ln  net.Listener

	mu        sync.Mutex
	last      map[string]storeWrite // last accepted write per resource
	repeats   []string              // a fence accepted for two leases
	accepted  int
	rejected  int
	versions  map[string]int64
	closeOnce sync.Once
}

type storeWrite struct {
	fence int64
	lease string
}

// NewStore starts a Store on a free loopback port.
func NewStore() (*Store, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Store{ln: ln, last: map[string]storeWrite{}, versions: map[string]int64{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /write", s.write)
	mux.HandleFunc("POST /source", s.bump)
	mux.HandleFunc("GET /source", s.version)
	s.srv = &http.Server{Handler: mux}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL returns the store's base URL.
func (s *Store) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the server.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.srv.Close() })
	return err
}

func (s *Store) write(w http.ResponseWriter, r *http.Request) {
	res, lease := r.FormValue("res"), r.FormValue("lease")
	fence, err := strconv.ParseInt(r.FormValue("fence"), 10, 64)
	if res == "" || lease == "" || err != nil || fence <= 0 {
		http.Error(w, "bad write", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.last[res]
	switch {
	case ok && fence == last.fence && lease != last.lease:
		s.repeats = append(s.repeats, fmt.Sprintf("%s: fence %d accepted from lease %s, then written by lease %s", res, fence, last.lease, lease))
		s.rejected++
		http.Error(w, "fence repeated", http.StatusConflict)
	case ok && fence < last.fence:
		s.rejected++
		http.Error(w, "stale fence", http.StatusConflict)
	default:
		s.last[res] = storeWrite{fence, lease}
		s.accepted++
		w.WriteHeader(http.StatusOK)
	}
}

func (s *Store) bump(w http.ResponseWriter, r *http.Request) {
	key := r.FormValue("key")
	s.mu.Lock()
	s.versions[key]++
	v := s.versions[key]
	s.mu.Unlock()
	fmt.Fprint(w, v)
}

func (s *Store) version(w http.ResponseWriter, r *http.Request) {
	key := r.FormValue("key")
	s.mu.Lock()
	v := s.versions[key]
	s.mu.Unlock()
	fmt.Fprint(w, v)
}

// Repeats returns the fences the store saw from two different leases.
func (s *Store) Repeats() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.repeats...)
}

// Counts returns how many fenced writes were accepted and rejected.
func (s *Store) Counts() (accepted, rejected int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, s.rejected
}
