package tracing

import "github.com/cgn-bot/coord"

func (b *backend) RWLocker() coord.RWLocker { return b.t.RWLocker(b.next.RWLocker()) }

func (b *backend) Semaphores() coord.Semaphores { return b.t.Semaphores(b.next.Semaphores()) }

func (b *backend) Elector() coord.Elector { return b.t.Elector(b.next.Elector()) }

func (b *backend) Jobs() coord.Jobs { return b.t.Jobs(b.next.Jobs()) }

func (b *backend) RateLimiter() coord.RateLimiter { return b.t.RateLimiter(b.next.RateLimiter()) }

func (b *backend) Streams() coord.Streams { return b.t.Streams(b.next.Streams()) }
