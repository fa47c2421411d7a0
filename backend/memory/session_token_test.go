package memory

import (
	"errors"
	"testing"

	"github.com/cgn-bot/coord"

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

// Get checks a token's shape only when its lookup finds nothing, and
// still tells a malformed token (ErrInvalid) from a missing session
// (ErrNotFound) and from a closed node (ErrClosed).
func TestGetTokenErrors(t *testing.T) {
	ns := nodes(t, 1)
	st := ns[0].Sessions()
	ctx := t.Context()
	s, err := st.Create(ctx, "u", map[string]any{"a": 1})
	if err != nil {
		t.Fatal(err)
	}
	// The live token with one character outside the alphabet, and one
	// with bits set past the 256 the last character may carry.
	bad := []string{s.ID[:10] + "+" + s.ID[11:], s.ID[:len(s.ID)-1] + "B", s.ID + "A", s.ID[:len(s.ID)-1], "s2" + s.ID[2:]}
	for _, tok := range bad {
		if _, err := st.Get(ctx, tok); !errors.Is(err, coord.ErrInvalid) {
			t.Errorf("Get(%q) = %v; want ErrInvalid", secret.Redact(tok), err)
		}
	}
	if _, err := st.Get(ctx, secret.SessionToken()); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Get of an unknown token = %v; want ErrNotFound", err)
	}
	if got, err := st.Get(ctx, s.ID); err != nil || got.ID != s.ID {
		t.Fatalf("Get = %v, %v", got, err)
	}
	if err := ns[0].Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, bad[0]); !errors.Is(err, coord.ErrInvalid) {
		t.Errorf("Get of a malformed token on a closed node = %v; want ErrInvalid", err)
	}
	if _, err := st.Get(ctx, s.ID); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("Get on a closed node = %v; want ErrClosed", err)
	}
}
