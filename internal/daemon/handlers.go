package daemon

import (
	"context"
	"net/http"
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

func (s *Server) handleReadyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.stopping.Load() {
			writeError(w, r, nil, core.Errorf(core.CodeUnavailable, "stopping: this daemon is shutting down"))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 500*time.Millisecond)
		defer cancel()
		failing, masters, err := s.ready(ctx)
		if len(failing) > 0 && s.roleOf(w, r) == RoleNone {
			// Anyone may call /readyz: the addresses go only to an
			// operator or developer (README, Secrets).
			failing = withoutServers(failing)
		}
		if err != nil {
			var details map[string]any
			if len(failing) > 0 {
				details = map[string]any{"masters": masters, "masters_failing": len(failing), "failing_masters": failing}
			}
			writeErrorDetails(w, r, s.log, core.Wrap(core.CodeUnavailable, err, notReady(s.backend.Kind, err)), details)
			return
		}
		if len(failing) > 0 { // a cluster that still serves: see ready
			writeJSON(w, http.StatusOK, readyzDegraded{Status: "ready", Backend: s.backend.Kind,
				Masters: masters, MastersFailing: len(failing), FailingMasters: failing})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "backend": s.backend.Kind})
	})
}

// readyzDegraded is /readyz's answer on a Redis Cluster some of whose
// masters fail the probe while others pass: ready, counting the masters and
// the failing ones, and saying what each failing one does (with its
// address for an operator or developer).
type readyzDegraded struct {
	Status         string          `json:"status"`
	Backend        string          `json:"backend"`
	Masters        int             `json:"masters"`
	MastersFailing int             `json:"masters_failing"`
	FailingMasters []masterProblem `json:"failing_masters"`
}

type whoamiResponse struct {
	Role Role `json:"role"`
}

func (s *Server) handleWhoami() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, whoamiResponse{Role: s.roleOf(w, r)})
	})
}
