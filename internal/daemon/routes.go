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

	// Rate limiting (s.limited applies a limit; POST /run and /assistant
	// take s.limited("run", …) and s.limited("assistant", …)).
	s.mux.Handle("GET /api/public/tenant-meta", s.limited("tenant-meta", s.handleTenantMeta()))
	s.mux.Handle("GET /api/secure/ping", s.requireUserTenant(s.limited("secure-ping", s.handleSecurePing())))
	s.mux.Handle("GET /api/dev/rl-test", dev(s.limited("rl-test", s.handleRLTest())))
	s.mux.Handle("GET /api/dev/rate-limits/config", dev(s.handleLimitsConfigGet()))
	s.mux.Handle("POST /api/dev/rate-limits/config", dev(s.handleLimitsConfigSet()))
	s.mux.Handle("DELETE /api/dev/rate-limits/config", dev(s.handleLimitsConfigDelete()))
	s.mux.Handle("POST /api/dev/rate-limits/reset", dev(s.handleLimitsReset()))
	s.mux.Handle("GET /api/obs/rate-limits", obs(s.handleRateLimitsSnapshot()))

	if s.cfg.PrometheusEnabled {
		s.mux.Handle("GET "+s.cfg.PrometheusRoute, s.handleMetrics())
	}
}
