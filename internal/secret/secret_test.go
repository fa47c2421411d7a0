package secret

import (
	"strings"
	"testing"
)

func TestSessionToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok := SessionToken()
		if !ValidSessionToken(tok) {
			t.Fatalf("fresh token %q is not valid", tok)
		}
		if seen[tok] {
			t.Fatal("token repeated")
		}
		seen[tok] = true
		h := Handle(tok)
		if !ValidHandle(h) || strings.Contains(tok, h) {
			t.Fatalf("handle %q of token is not a valid, separate handle", h)
		}
	}
	for _, bad := range []string{"", "s1.", "s2." + SessionToken()[3:], SessionToken() + "A", SessionToken()[:45] + "*", Handle("x")} {
		if ValidSessionToken(bad) {
			t.Errorf("ValidSessionToken(%q) = true", bad)
		}
	}
}

func TestLockToken(t *testing.T) {
	a, b := LockToken(), LockToken()
	if len(a) != 22 || a == b {
		t.Fatalf("lock tokens %q %q: want 22 characters, distinct", a, b)
	}
}

func TestRedact(t *testing.T) {
	if Redact("") != "" || len(Redact("secret")) != 8 || Redact("a") == Redact("b") {
		t.Fatal("Redact: want empty for empty, 8 distinct characters otherwise")
	}
	if strings.Contains(Redact("secretsecret"), "secret") {
		t.Fatal("Redact leaks its input")
	}
}
