package daemon

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/refrakt/refrakt/internal/core"
)

// handleMetrics serves the daemon's registry in the Prometheus text format,
// behind PROMETHEUS_BEARER_TOKEN when it is set (compared in constant time).
func (s *Server) handleMetrics() http.Handler {
	h := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: nil, Registry: s.reg})
	want := s.cfg.PrometheusBearerToken
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A scrape is one moment's state: no cache may keep it.
		w.Header().Set(hdrCacheControl, "no-store")
		if want != "" {
			got, ok := bearer(r)
			if !ok || !equalSecret(got, want) {
				challenge(w, r, "metrics")
				writeError(w, r, s.log, core.Errorf(core.CodeUnauthorized, "a valid metrics bearer token is required"))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}
