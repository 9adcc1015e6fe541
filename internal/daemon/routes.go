package daemon

import "net/http"

// routes lists the whole API. Middleware per group:
//   - public: identity, rate limits (per route), admission (job routes);
//     identityQuery on the routes whose query holds identity alone
//   - /api/dev/*: developer token; the job actions take no body (bodiless)
//   - /api/obs/*: operator or developer token
//   - metrics: its own bearer token when PROMETHEUS_BEARER_TOKEN is set
//
// The metrics route (PROMETHEUS_METRICS_ROUTE) may be any path outside
// these: config.apiRoute refuses the others, so keep the two in step.
func (s *Server) routes() {
	dev := func(h http.Handler) http.Handler { return s.requireRole(RoleDeveloper, h) }
	obs := func(h http.Handler) http.Handler { return s.requireRole(RoleOperator, h) }

	s.mux.Handle("GET /healthz", handleHealthz())
	s.mux.Handle("GET /readyz", s.handleReadyz())

	// Jobs (DESIGN §4, §5). /run and /assistant: rate limit (s.limited),
	// then validation and admission control inside the handler.
	s.mux.Handle("POST /run", s.identityQuery(s.limited("run", s.handleRun())))
	s.mux.Handle("GET /run/{id}", s.handleGetRun())
	s.mux.Handle("POST /assistant", s.identityQuery(s.limited("assistant", s.handleAssistant())))
	s.mux.Handle("GET /api/dev/jobs", dev(s.handleListJobs()))
	s.mux.Handle("POST /api/dev/jobs/enqueue", dev(s.handleEnqueueJob()))
	s.mux.Handle("POST /api/dev/jobs/enqueue-batch", dev(s.handleEnqueueBatch()))
	s.mux.Handle("POST /api/dev/jobs/run-next", dev(s.bodiless(s.handleRunNext())))
	s.mux.Handle("POST /api/dev/jobs/tick", dev(s.bodiless(s.handleTick())))
	s.mux.Handle("POST /api/dev/jobs/{id}/run", dev(s.bodiless(s.handleRunJob())))
	s.mux.Handle("POST /api/dev/jobs/{id}/cancel", dev(s.bodiless(s.handleCancelJob())))
	s.mux.Handle("POST /api/dev/jobs/{id}/requeue", dev(s.bodiless(s.handleRequeueJob())))
	s.mux.Handle("DELETE /api/dev/queues", dev(s.bodiless(s.handleRemoveQueue())))
	s.mux.Handle("POST /api/dev/queues/requeue-dead", dev(s.bodiless(s.handleRequeueDead())))
	s.mux.Handle("POST /api/dev/queues/pause", dev(s.bodiless(s.handleSetPaused(true))))
	s.mux.Handle("POST /api/dev/queues/resume", dev(s.bodiless(s.handleSetPaused(false))))
	s.mux.Handle("GET /api/obs/jobs", obs(s.handleObsJobs()))

	s.mux.Handle("GET /api/dev/whoami", dev(s.handleWhoami()))
	s.mux.Handle("GET /api/obs/whoami", obs(s.handleWhoami()))
	s.mux.Handle("GET /api/obs/snapshot", obs(s.handleSnapshot()))
	s.mux.Handle("GET /api/obs/daemons", obs(s.handleDaemons()))

	// Rate limiting (s.limited applies a limit; POST /run and /assistant
	// take s.limited("run", …) and s.limited("assistant", …)).
	s.mux.Handle("GET /api/public/tenant-meta", s.limited("tenant-meta", s.handleTenantMeta()))
	s.mux.Handle("GET /api/secure/ping", s.identityQuery(s.requireUserTenant(s.limited("secure-ping", s.handleSecurePing()))))
	s.mux.Handle("GET /api/dev/rl-test", dev(s.identityQuery(s.limited("rl-test", s.handleRLTest()))))
	s.mux.Handle("GET /api/dev/rate-limits/config", dev(s.handleLimitsConfigGet()))
	s.mux.Handle("POST /api/dev/rate-limits/config", dev(s.handleLimitsConfigSet()))
	s.mux.Handle("DELETE /api/dev/rate-limits/config", dev(s.handleLimitsConfigDelete()))
	s.mux.Handle("POST /api/dev/rate-limits/reset", dev(s.handleLimitsReset()))
	s.mux.Handle("POST /api/dev/rate-limits/ban", dev(s.handleLimitsBan()))
	s.mux.Handle("GET /api/obs/rate-limits", obs(s.handleRateLimitsSnapshot()))
	// The decision route: a proxy asks it for every request of the user's
	// own service (RATE_LIMITS); any method, as a forward-auth sub-request
	// may carry the original one, and any path after the limit's name, as
	// Envoy's ext_authz appends the original path to its path_prefix.
	check := s.handleCheck()
	s.mux.Handle("/api/check/{limit}", check)
	s.mux.Handle("/api/check/{limit}/{rest...}", check)

	if s.cfg.PrometheusEnabled {
		s.mux.Handle("GET "+s.cfg.PrometheusRoute, s.handleMetrics())
	}
}
