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
		if err := s.ready(ctx); err != nil {
			writeError(w, r, s.log, core.Wrap(core.CodeUnavailable, err, notReady(s.backend.Kind, err)))
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "backend": s.backend.Kind})
	})
}

type whoamiResponse struct {
	Role Role `json:"role"`
}

func (s *Server) handleWhoami() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, whoamiResponse{Role: s.roleOf(w, r)})
	})
}
