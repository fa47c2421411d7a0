package metrics

import "github.com/cgn-bot/coord"

func (b *backend) RWLocker() coord.RWLocker { return b.m.RWLocker(b.next.RWLocker()) }

func (b *backend) Semaphores() coord.Semaphores { return b.m.Semaphores(b.next.Semaphores()) }

func (b *backend) Elector() coord.Elector { return b.m.Elector(b.next.Elector()) }

func (b *backend) Jobs() coord.Jobs { return b.m.Jobs(b.next.Jobs()) }

func (b *backend) RateLimiter() coord.RateLimiter { return b.m.RateLimiter(b.next.RateLimiter()) }

func (b *backend) Streams() coord.Streams { return b.m.Streams(b.next.Streams()) }
