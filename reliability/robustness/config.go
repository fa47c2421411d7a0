package robustness

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// ErrHistory is wrapped by errors about a malformed history or worker
// configuration.
var ErrHistory = errors.New("robustness: bad history")

// WorkerConfig is what the driver tells a worker, through a JSON file
// that only the test user can read (it holds session IDs, which are
// secrets).
type WorkerConfig struct {
	ID   int   `json:"id"`
	Seed int64 `json:"seed"`
	// Nodes maps each redis-server's address (as a Cluster announces it)
	// to the worker's proxy in front of it; the worker dials the proxy.
	Nodes map[string]string `json:"nodes"`
	// Cluster makes the worker use a cluster client over Nodes.
	Cluster bool `json:"cluster,omitempty"`
	// MasterName and Sentinels make the worker use a Sentinel failover
	// client (Nodes then holds the sentinels and the data nodes).
	MasterName string        `json:"masterName,omitempty"`
	Sentinels  []string      `json:"sentinels,omitempty"`
	StoreURL   string        `json:"storeURL"` // the driver's checking store
	Prefix     string        `json:"prefix"`
	History    string        `json:"history"` // path of the worker's JSON-lines history
	LeaseTTL   time.Duration `json:"leaseTTL"`
	// CacheOnly makes the worker an instance that takes no leases and
	// does not write the source of truth: it reads through its near cache,
	// uses sessions and events. Its near cache is kept fresh by remote
	// invalidations alone (a writer evicts its own copy), and without lock
	// waits, which subscribe on the subscriber connection and so show its
	// outages sooner, it shows how long a silent outage goes unnoticed.
	CacheOnly bool `json:"cacheOnly,omitempty"`
	// Resources are the lease names the workers contend for.
	Resources []string `json:"resources"`
	// Sessions are the IDs of the shared sessions, Fields their register
	// fields, Users the users the workers make sessions for.
	Sessions []string `json:"sessions"`
	Fields   []string `json:"fields"`
	Users    []string `json:"users"`
	// Keys are the near-cache keys read and written.
	Keys []string `json:"keys"`
	// CacheMaxTTL is the near cache's entry lifetime; it is long so that
	// invalidation, not expiry, keeps the cache fresh.
	CacheMaxTTL time.Duration `json:"cacheMaxTTL"`
	// RWResources are the read-write lock names, Semaphores the semaphore
	// names (each with SemLimit permits), Election the election the
	// workers campaign in (none of them for a CacheOnly worker).
	RWResources []string `json:"rwResources,omitempty"`
	Semaphores  []string `json:"semaphores,omitempty"`
	SemLimit    int      `json:"semLimit,omitempty"`
	Election    string   `json:"election,omitempty"`
	// Streams makes the worker append to [StreamName] and consume it in
	// [StreamGroup] as consumer "w<ID>", each entry pending at most
	// ClaimAfter before a sibling may claim it (not a CacheOnly worker).
	Streams    bool          `json:"streams,omitempty"`
	ClaimAfter time.Duration `json:"claimAfter,omitempty"`
	// DrainTimeout bounds the wait, after the workload stopped, for the
	// group to have nothing pending or unread.
	DrainTimeout time.Duration `json:"drainTimeout,omitempty"`
}

// WriteConfig writes c to path, readable by the owner only.
func WriteConfig(path string, c WorkerConfig) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// ReadConfig reads a WorkerConfig written by [WriteConfig].
func ReadConfig(path string) (WorkerConfig, error) {
	var c WorkerConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: worker config %s: %v", ErrHistory, path, err)
	}
	if c.LeaseTTL <= 0 || len(c.Resources) == 0 || len(c.Nodes) == 0 || c.StoreURL == "" {
		return c, fmt.Errorf("%w: worker config %s is incomplete", ErrHistory, path)
	}
	return c, nil
}
