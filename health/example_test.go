package health_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/health"
)

// Serve a backend's health at /healthz; a load balancer takes the
// instance out on 503.
func ExampleHandler() {
	node := memory.NewHub(nil).New(nil)
	defer node.Close(context.Background())

	h := health.Handler(node, nil) // mux.Handle("GET /healthz", h)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	body, _ := io.ReadAll(rec.Body)
	fmt.Print(rec.Code, " ", string(body))
	// Output:
	// 200 {"redis":{"connected":true,"state":"connected","latency":0},"cache":{"initialized":true,"messageCount":0},"sessions":{"count":0},"overall":"healthy","backend":"memory"}
}

// Serve /livez, /readyz and /healthz. Point the load balancer at /livez:
// it stays 200 while Redis is down, so the fleet is not dropped at once.
func ExampleRegister() {
	node := memory.NewHub(nil).New(nil)
	defer node.Close(context.Background())

	mux := http.NewServeMux()
	health.Register(mux, node, nil)

	for _, path := range []string{"/livez", "/readyz"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		body, _ := io.ReadAll(rec.Body)
		fmt.Print(path, " ", rec.Code, " ", string(body))
	}
	// Output:
	// /livez 200 {"status":"ok","probe":"liveness","redis":{"connected":true,"state":"connected","latency":0},"cache":{"initialized":true,"messageCount":0},"sessions":{"count":0},"overall":"healthy","backend":"memory"}
	// /readyz 200 {"status":"ok","probe":"readiness","redis":{"connected":true,"state":"connected","latency":0},"cache":{"initialized":true,"messageCount":0},"sessions":{"count":0},"overall":"healthy","backend":"memory"}
}
