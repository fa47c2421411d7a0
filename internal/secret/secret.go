// Package secret makes and checks the secrets coord hands out: lock tokens
// and session tokens, and the non-secret handles derived from them.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// SessionTokenPrefix starts every session token, so a token of another
// kind or version is refused before any lookup.
const SessionTokenPrefix = "s1."

// sessionTokenLen is the length of a session token: the prefix and 32
// random bytes in unpadded base64url.
var sessionTokenLen = len(SessionTokenPrefix) + base64.RawURLEncoding.EncodedLen(32)

// LockToken returns a new lock token: 16 bytes from crypto/rand in
// unpadded base64url.
func LockToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	var out [22]byte
	return string(base64.RawURLEncoding.AppendEncode(out[:0], b[:]))
}

// SessionToken returns a new session token: [SessionTokenPrefix] and 32
// bytes (256 bits) from crypto/rand in unpadded base64url.
func SessionToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return SessionTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// ValidSessionToken reports whether s has the shape of a session token.
// It does not say that a store issued it.
func ValidSessionToken(s string) bool {
	if len(s) != sessionTokenLen || !strings.HasPrefix(s, SessionTokenPrefix) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s[len(SessionTokenPrefix):])
	return err == nil && len(b) == 32
}

// Handle returns the non-secret handle of a session token: the first 128
// bits of its SHA-256, in hex (32 characters). Stores key sessions by it,
// so the token itself is never stored.
func Handle(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:16])
}

// ValidHandle reports whether s has the shape of a handle.
func ValidHandle(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Redact returns a short, stable, non-reversible tag for a secret, for
// logs: 8 hex characters of its SHA-256.
func Redact(s string) string {
	if s == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}
