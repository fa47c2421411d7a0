package redistest

import "go.uber.org/goleak"

// GoleakOptions returns options for goleak.VerifyTestMain (or VerifyNone)
// in packages whose tests make go-redis clients fail to dial, by killing or
// stopping a server. After PoolSize failed dials a go-redis pool starts a
// goroutine (ConnPool.tryDial) that probes once a second; it ends after the
// client's Close, but only at its next wake-up, so it can still be running
// when goleak looks. The options ignore that goroutine and nothing else.
func GoleakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
	}
}
