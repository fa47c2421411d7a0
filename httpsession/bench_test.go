package httpsession_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/httpsession"
)

// BenchmarkLoadAndSave measures the middleware's cost per request on the
// memory backend: a request with a session cookie that reads a field
// (load and slide), and one that also writes a field (load, merge).
func BenchmarkLoadAndSave(b *testing.B) {
	node := memory.NewHub(nil).NewNode(nil)
	defer node.Close(context.Background())
	m, err := httpsession.New(node.Sessions(), nil)
	if err != nil {
		b.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = httpsession.FromContext(r.Context()).Login(r.Context(), "alice")
	})).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	cookie := rec.Result().Cookies()[0]

	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"read", func(w http.ResponseWriter, r *http.Request) {
			_, _ = httpsession.FromContext(r.Context()).GetInt64("n")
		}},
		{"write", func(w http.ResponseWriter, r *http.Request) {
			_ = httpsession.FromContext(r.Context()).Put("n", 1)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := m.LoadAndSave(tc.h)
			req := httptest.NewRequest("GET", "/", nil)
			req.AddCookie(cookie)
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
