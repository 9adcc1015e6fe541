package daemon

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (flush, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recoverPanics turns a panic in a handler into a logged 500 JSON error
// instead of a dropped connection.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw, ok := w.(*statusWriter)
		if !ok {
			sw = &statusWriter{ResponseWriter: w}
		}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v) // the server's own way to abort a response: let it
			}
			s.log.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !sw.wrote {
				writeError(sw, r, nil, core.Errorf(core.CodeInternal, "internal error"))
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// observe logs one line per request at debug level, with the route pattern
// (never the raw path in metrics, so label sets stay bounded).
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw, ok := w.(*statusWriter)
		if !ok {
			sw = &statusWriter{ResponseWriter: w}
		}
		next.ServeHTTP(sw, r)
		if !sw.wrote {
			sw.status = http.StatusOK
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.observeRequest(route, sw.status, time.Since(start))
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "route", route, "status", sw.status, "duration", time.Since(start))
	})
}

// observeRequest records one finished request in the HTTP metrics.
func (s *Server) observeRequest(route string, status int, d time.Duration) {
	s.metrics.HTTPRequest(route, status, d)
}

// limitBody refuses bodies over maxBody: at once when Content-Length says
// so, and while reading otherwise (decodeJSON turns that into 413).
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			writeError(w, r, s.log, core.Errorf(core.CodeTooLarge, "request body is larger than %d bytes", maxBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

// dispatch routes through the mux, answering unknown paths and methods
// with the JSON error envelope rather than the mux's plain text.
func (s *Server) dispatch() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := s.mux.Handler(r); pattern == "" {
			probe := &statusWriter{ResponseWriter: discardBody{w}}
			s.mux.ServeHTTP(probe, r) // sets Allow on a 405
			if probe.status == http.StatusMethodNotAllowed {
				writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: errorDetail{Code: "method_not_allowed", Message: r.Method + " is not allowed on " + r.URL.Path}})
				return
			}
			writeError(w, r, s.log, core.Errorf(core.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

// discardBody passes headers through but swallows the status and body.
type discardBody struct{ w http.ResponseWriter }

func (d discardBody) Header() http.Header         { return d.w.Header() }
func (d discardBody) Write(b []byte) (int, error) { return len(b), nil }
func (d discardBody) WriteHeader(int)             {}

// capInFlight answers 503 with Retry-After once REFRAKT_MAX_IN_FLIGHT
// requests are being served, so a flood queues nowhere and memory stays
// bounded; liveness and readiness probes are never refused.
func (s *Server) capInFlight(next http.Handler) http.Handler {
	limit := int64(s.cfg.MaxInFlight)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		if n := s.inFlight.Add(1); limit > 0 && n > limit {
			s.inFlight.Add(-1)
			w.Header().Set("Retry-After", "1")
			writeError(w, r, s.log, core.Errorf(core.CodeUnavailable, "too many requests in flight (%d); retry shortly", limit))
			return
		}
		defer s.inFlight.Add(-1)
		next.ServeHTTP(w, r)
	})
}
