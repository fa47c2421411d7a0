package redis

import (
	"context"
	"errors"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// writesRefused returns the server's refusal when it refuses writes that
// may grow memory (maxmemory reached with the noeviction policy: Acquire,
// session Create, Update and Touch fail, releases still work), or "" when
// it accepts them or could not be asked.
//
// The probe is SET XX on a key that never exists: Redis checks memory
// before it runs a command that may grow it, so under OOM the probe is
// refused, and otherwise it writes nothing. In a Cluster it asks the
// master of the probe key's slot only.
func (b *Backend) writesRefused(ctx context.Context) string {
	if err := b.client.SetXX(ctx, b.keys.prefix+"oom-probe", "", 0).Err(); isOOM(err) {
		return err.Error()
	}
	return ""
}

// isOOM reports whether err is the server refusing a write for lack of
// memory. Redis refuses a script's first write that may grow memory, so a
// script refused so has written nothing.
func isOOM(err error) bool {
	var rerr goredis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "OOM ")
}
