package httprate_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/cgn-bot/coord"
	"github.com/cgn-bot/coord/backend/memory"
	"github.com/cgn-bot/coord/httprate"
)

// Every instance built on the same backend counts against one limit: here
// 2 requests a minute per client IP.
func Example() {
	b := memory.NewHub(nil).New(nil) // redis.New(client, nil) in production
	defer b.Close(context.Background())

	limit := coord.Limit{Name: "api", Rate: 2, Period: time.Minute}
	mw, err := httprate.New(b.RateLimiter(), limit, &httprate.Options{Key: httprate.ByIP})
	if err != nil {
		panic(err)
	}
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	}))

	for range 3 {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "192.0.2.1:4321"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Printf("%d remaining=%s retry-after=%q\n", w.Code, w.Header().Get("RateLimit-Remaining"), w.Header().Get("Retry-After"))
	}
	// Output:
	// 200 remaining=1 retry-after=""
	// 200 remaining=0 retry-after=""
	// 429 remaining=0 retry-after="30"
}
