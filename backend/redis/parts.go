package redis

import "github.com/cgn-bot/coord"

// RWLocker returns the read-write leases of this instance.
func (b *Backend) RWLocker() coord.RWLocker { return b.locker.rw }

// Semaphores returns the permits of this instance.
func (b *Backend) Semaphores() coord.Semaphores { return b.locker.sem }

// Elector returns the elections this instance takes part in.
func (b *Backend) Elector() coord.Elector { return b.locker.elect }

// Jobs returns the record of periodic jobs.
func (b *Backend) Jobs() coord.Jobs { return &Jobs{b: b} }

// RateLimiter returns the rate limits shared by every instance.
func (b *Backend) RateLimiter() coord.RateLimiter { return b.rates }

// Streams returns the durable streams.
func (b *Backend) Streams() coord.Streams { return b.streamPart() }
