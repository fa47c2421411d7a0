package memory

import "github.com/cgn-bot/coord"

// RWLocker returns the read-write leases of this instance.
func (n *Backend) RWLocker() coord.RWLocker { return &RWLocker{n} }

// Semaphores returns the permits of this instance.
func (n *Backend) Semaphores() coord.Semaphores { return &Semaphores{n} }

// Elector returns the elections this instance takes part in.
func (n *Backend) Elector() coord.Elector { return &Elector{n} }

// Jobs returns the record of periodic jobs.
func (n *Backend) Jobs() coord.Jobs { return &Jobs{n: n} }

// RateLimiter returns the rate limits shared by the hub's instances.
func (n *Backend) RateLimiter() coord.RateLimiter { return RateLimiter{n} }

// Streams returns the durable streams.
func (n *Backend) Streams() coord.Streams { return &Streams{n: n} }
