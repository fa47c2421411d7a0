package memory_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
)

// FuzzSessionToken gives arbitrary strings as session tokens to a memory
// store that issued one session: only that session's exact token finds it;
// anything else is ErrInvalid (not a token's shape) or ErrNotFound.
func FuzzSessionToken(f *testing.F) {
	hub := memory.NewHub(nil)
	n := hub.New(nil)
	f.Cleanup(func() { _ = n.Close(context.Background()) })
	ctx := context.Background()
	sess, err := n.Sessions().Create(ctx, "user-1", map[string]any{"k": "v"})
	if err != nil {
		f.Fatal(err)
	}
	tok := sess.ID
	f.Add(tok)
	f.Add(tok[:len(tok)-1])
	f.Add(tok + "A")
	f.Add(strings.ToUpper(tok))
	f.Add(sess.Handle)
	f.Add("s1." + strings.Repeat("A", 43))
	f.Add("s1." + strings.Repeat("_", 43))
	f.Add("s2" + tok[2:])
	f.Add("")
	f.Add("s1.")
	f.Add(tok + "\n")
	f.Fuzz(func(t *testing.T, id string) {
		s := n.Sessions()
		got, err := s.Get(ctx, id)
		if id == tok {
			if err != nil || got.UserID != "user-1" {
				t.Fatalf("Get(issued token) = %v, %v", got, err)
			}
			return
		}
		if err == nil {
			t.Fatalf("Get(%q) found session %+v of token %q", id, got, tok)
		}
		if !errors.Is(err, coord.ErrInvalid) && !errors.Is(err, coord.ErrNotFound) {
			t.Fatalf("Get(%q) = %v, want ErrInvalid or ErrNotFound", id, err)
		}
		if strings.Contains(err.Error(), tok) {
			t.Fatalf("Get(%q)'s error carries the issued token", id)
		}
		if ok, err := s.Exists(ctx, id); ok || (err != nil && !errors.Is(err, coord.ErrInvalid)) {
			t.Fatalf("Exists(%q) = %v, %v", id, ok, err)
		}
		for name, op := range map[string]func() error{
			"Touch":  func() error { _, err := s.Touch(ctx, id); return err },
			"Update": func() error { return s.Update(ctx, id, map[string]any{"k": "x"}) },
			"Extend": func() error { return s.Extend(ctx, id, time.Hour) },
			"Rotate": func() error { _, err := s.Rotate(ctx, id); return err },
			// Another user's handle, or a token used as a handle.
			"Revoke(other user)": func() error { return s.Revoke(ctx, "user-2", id) },
			"Revoke(owner)": func() error {
				if id == sess.Handle {
					return coord.ErrNotFound // the owner may revoke by the real handle
				}
				return s.Revoke(ctx, "user-1", id)
			},
		} {
			if err := op(); !errors.Is(err, coord.ErrInvalid) && !errors.Is(err, coord.ErrNotFound) {
				t.Fatalf("%s(%q) = %v, want ErrInvalid or ErrNotFound", name, id, err)
			}
		}
		if err := s.Delete(ctx, id); err != nil && !errors.Is(err, coord.ErrInvalid) {
			t.Fatalf("Delete(%q) = %v", id, err)
		}
		if got, err := s.Get(ctx, tok); err != nil || got.Data["k"] == nil || string(got.Data["k"]) != `"v"` {
			t.Fatalf("the issued session changed after calls with %q: %v, %v", id, got, err)
		}
	})
}
