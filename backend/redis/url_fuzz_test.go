package redis_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/cgn-bot/coord"
	coordredis "github.com/cgn-bot/coord/backend/redis"
)

// FuzzParseURL checks coordredis.ParseURL and FromLookup: errors wrap
// ErrInvalid and never carry the password.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"redis://localhost:6379/0", "rediss://user:s3cretpassw0rd@127.0.0.1:6380/2", "redis://:p%40ss@h",
		"redis://h?dial_timeout=1s&pool_size=3", "redis://h?bogus=1", "http://h", "redis://h:99999",
		"redis://user:pa ss@h", "redis://[::1]:6379", "redis://h/abc", "redis://h?protocol=4", "%zz", "rediss://",
		"redis://user:hunter2hunter2@h?db=x",
	} {
		f.Add(s, "6379", "0")
	}
	f.Fuzz(func(t *testing.T, raw, port, db string) {
		// tls_ca_file names a file to read; a fuzzed one could name
		// /dev/zero or a FIFO. The CA option is tested in reliability/.
		if u, err := url.Parse(raw); err == nil && u.Query().Has("tls_ca_file") {
			return
		}
		opts, err := coordredis.ParseURL(raw)
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("ParseURL(%q) = %v, which does not wrap ErrInvalid", raw, err)
			}
			if u, perr := url.Parse(raw); perr == nil {
				if pw, ok := u.User.Password(); ok && len(pw) >= 6 && !strings.Contains(strings.Replace(raw, pw, "", 1), pw) &&
					strings.Contains(err.Error(), pw) {
					t.Fatalf("ParseURL's error carries the password %q: %v", pw, err)
				}
			}
		} else if opts == nil {
			t.Fatalf("ParseURL(%q) = nil, nil", raw)
		}
		env := map[string]string{"REDIS_HOST": "127.0.0.1", "REDIS_PORT": port, "REDIS_DB": db, "REDIS_PASSWORD": "pw-" + raw}
		opts, err = coordredis.FromLookup(func(k string) string { return env[k] })
		if err != nil {
			if !errors.Is(err, coord.ErrInvalid) {
				t.Fatalf("FromLookup(port %q, db %q) = %v, which does not wrap ErrInvalid", port, db, err)
			}
			if len(raw) >= 6 && strings.Contains(err.Error(), "pw-"+raw) {
				t.Fatalf("FromLookup's error carries the password: %v", err)
			}
		} else if opts.DB < 0 {
			t.Fatalf("FromLookup(db %q) gave DB %d", db, opts.DB)
		}
	})
}
