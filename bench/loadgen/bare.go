package loadgen

import (
	"net/http"
	"time"
)

// BareBody is what the baseline handler answers: the same bytes refrakt's
// GET /api/dev/rl-test answers, so the baseline writes as much as the
// endpoint it is compared with.
const BareBody = `{"limit":"rl-test","ok":true}` + "\n"

// BareHandler is the baseline: a plain net/http handler with no middleware
// that answers BareBody as JSON.
func BareHandler() http.Handler {
	body := []byte(BareBody)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
}

// BareServer is an http.Server for BareHandler with the daemon's server
// settings (internal/daemon/run.go: the same header, read, write and idle
// timeouts and header limit), so the comparison is about the handler chain,
// not the server's configuration.
func BareServer() *http.Server {
	return &http.Server{
		Handler:           BareHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}
