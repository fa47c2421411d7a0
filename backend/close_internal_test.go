package backend

import (
	"context"
	"errors"
	"testing"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
)

var (
	errBackendClose = errors.New("backend close failed")
	errClientClose  = errors.New("client close failed")
)

// failingBackend is a memory node whose Close fails after closing.
type failingBackend struct{ *memory.Backend }

func (f failingBackend) Close(ctx context.Context) error {
	_ = f.Backend.Close(ctx)
	return errBackendClose
}

type failingClient struct{ closed *bool }

func (c failingClient) Close() error { *c.closed = true; return errClientClose }

func TestCloseReturnsEveryError(t *testing.T) {
	node := memory.NewHub(nil).New(nil)
	closed := false
	op, err := wrap(Config{}, failingBackend{node}, "redis", "", failingClient{&closed})
	if err != nil {
		t.Fatal(err)
	}
	err = op.Close(t.Context())
	if !closed {
		t.Error("the client was not closed after the backend's Close failed")
	}
	if !errors.Is(err, errBackendClose) || !errors.Is(err, errClientClose) {
		t.Errorf("Close: %v, want both errors", err)
	}
	if j, ok := err.(interface{ Unwrap() []error }); !ok || len(j.Unwrap()) != 2 {
		t.Errorf("Close: %#v, want the two errors joined", err)
	}
	if again := op.Close(t.Context()); again != err {
		t.Errorf("second Close: %v, want the first result", again)
	}
	var _ coord.Backend = op
}
