package memory

import (
	"testing"

	"github.com/cgn-bot/coord/internal/secret"
)

// validToken agrees with secret.ValidSessionToken for every byte value at
// every position after the prefix.
func TestValidTokenEveryByte(t *testing.T) {
	tok := []byte(secret.SessionToken())
	for pos := len(secret.SessionTokenPrefix); pos < len(tok); pos++ {
		orig := tok[pos]
		for c := range 256 {
			tok[pos] = byte(c)
			s := string(tok)
			if got, want := validToken(s), secret.ValidSessionToken(s); got != want {
				t.Fatalf("byte %#x at %d: validToken = %v, secret.ValidSessionToken = %v", c, pos, got, want)
			}
		}
		tok[pos] = orig
	}
}
