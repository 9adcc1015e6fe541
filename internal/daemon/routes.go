package daemon

import "net/http"

// routes lists the whole API. Middleware per group:
//   - public: identity, rate limits (per route), admission (job routes)
//   - /api/dev/*: developer token
//   - /api/obs/*: operator or developer token
//   - metrics: its own bearer token when PROMETHEUS_BEARER_TOKEN is set
func (s *Server) routes() {
	dev := func(h http.Handler) http.Handler { return s.requireRole(RoleDeveloper, h) }
	obs := func(h http.Handler) http.Handler { return s.requireRole(RoleOperator, h) }

	s.mux.Handle("GET /healthz", handleHealthz())
	s.mux.Handle("GET /readyz", s.handleReadyz())

	s.mux.Handle("GET /api/dev/whoami", dev(s.handleWhoami()))
	s.mux.Handle("GET /api/obs/whoami", obs(s.handleWhoami()))

	if s.cfg.PrometheusEnabled {
		s.mux.Handle("GET "+s.cfg.PrometheusRoute, s.handleMetrics())
	}
}
