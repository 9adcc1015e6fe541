package daemon

import (
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/metrics"
)

// statusWriter remembers the status a handler wrote. One is allocated per
// request (by the outermost middleware) and shared by the rest.
//
// While routing (see dispatch) it also stands in for the mux's plain-text
// 404 and 405 answers: when no pattern matched, the mux writes those itself,
// and the writer answers with the JSON error envelope instead. This spares
// the mux a second lookup on every request just to learn that the route
// exists.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool

	routing *http.Request // the request being routed, until a handler writes
	log     *slog.Logger
	swallow bool // the mux's own error text is being dropped

	role    Role // what the request's bearer token grants, once roleSet
	roleSet bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.routing != nil {
		r := w.routing
		w.routing = nil
		if r.Pattern == "" && !w.wrote && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) {
			w.writeUnmatched(r, code)
			w.swallow = true
			return
		}
	}
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.swallow {
		return len(b), nil
	}
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// writeUnmatched answers a request no route matched: 405 (with the Allow
// header the mux set) when the path exists for other methods, else 404.
func (w *statusWriter) writeUnmatched(r *http.Request, code int) {
	w.Header().Del("Content-Length")
	if code == http.StatusMethodNotAllowed {
		writeMethodNotAllowed(w, r)
		return
	}
	writeError(w, r, w.log, core.Errorf(core.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
}

// writeMethodNotAllowed answers 405 in the JSON envelope; the caller has set
// Allow (the mux does, for the requests it routes).
func writeMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: errorDetail{Code: "method_not_allowed", Message: r.Method + " is not allowed on " + r.URL.Path}})
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
// (never the raw path in metrics, so label sets stay bounded). The metric
// series of each route and status are looked up once and kept, so a request
// costs no label hashing; the log line's arguments are built only when
// debug logging is on.
func (s *Server) observe(next http.Handler) http.Handler {
	series := newHTTPSeriesCache(s.metrics)
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
		if route == "" && sw.status != http.StatusNotFound && sw.status != http.StatusMethodNotAllowed {
			// Answered before routing (413 from Content-Length, 503 at the
			// in-flight cap): the route it was for, looked up only then.
			_, route = s.mux.Handler(r)
		}
		if route == "" {
			route = "unmatched"
		}
		d := time.Since(start)
		hs := series.get(routeStatus{route, sw.status})
		hs.requests.Inc()
		hs.duration.Observe(d.Seconds())
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "route", route, "status", sw.status, "duration", d)
		}
	})
}

type routeStatus struct {
	route  string
	status int
}

// httpSeries are the metrics of one route and status.
type httpSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func newHTTPSeriesCache(m *metrics.Metrics) *seriesCache[routeStatus, httpSeries] {
	return newSeriesCache(func(k routeStatus) httpSeries {
		return httpSeries{
			requests: m.HTTPRequests.WithLabelValues(k.route, strconv.Itoa(k.status)),
			duration: m.HTTPDuration.WithLabelValues(k.route),
		}
	})
}

// limitBody refuses bodies over MaxBody: at once when Content-Length says
// so, and while reading otherwise (decodeJSON turns that into 413).
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBody {
			writeError(w, r, s.log, core.Errorf(core.CodeTooLarge, "request body is larger than %d bytes", MaxBody))
			return
		}
		if r.Body != nil && r.Body != http.NoBody { // most GETs: nothing to wrap
			r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		}
		next.ServeHTTP(w, r)
	})
}

// dispatch routes through the mux, answering unknown paths and methods
// with the JSON error envelope rather than the mux's plain text. The mux
// routes once: its own 404 and 405 answers are recognised as they are
// written (a request no pattern matched keeps an empty r.Pattern) and
// replaced by statusWriter.
func (s *Server) dispatch() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw, ok := w.(*statusWriter)
		if !ok {
			sw = &statusWriter{ResponseWriter: w}
		}
		// The mux would answer a 307 to the cleaned path with an HTML body,
		// and a client following it sends its POST again. It cleans the
		// path as sent (escaped: "abc%2F..%2Fdef" is one segment), and
		// routes CONNECT by host alone.
		if p := r.URL.EscapedPath(); r.Method != http.MethodConnect && canonicalPath(p) != p {
			// Below /api/check/{limit}/ the path is the client's (Envoy
			// appends it) and ignored: it is routed as if it were empty,
			// rather than answered with a 404 naming refrakt's route.
			head, ok := checkHead(p)
			if !ok {
				writeError(sw, r, s.log, core.Errorf(core.CodeNotFound, "no route %s %s: the path is not canonical (the canonical path is %s)", r.Method, p, canonicalPath(p)))
				return
			}
			r2, u := *r, *r.URL
			u.Path, u.RawPath = head, ""
			r2.URL = &u
			r = &r2
		}
		sw.routing, sw.log = r, s.log
		s.mux.ServeHTTP(sw, r)
		sw.routing = nil
	})
}

// prefixCheck starts the decision route's paths.
const prefixCheck = "/api/check/"

// checkHead returns "/api/check/{limit}/" for an escaped path p below it
// whose "/api/check/{limit}" part is canonical: the rest is the client's.
func checkHead(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, prefixCheck)
	if !ok {
		return "", false
	}
	i := strings.IndexByte(rest, '/')
	if i <= 0 {
		return "", false
	}
	head := p[:len(prefixCheck)+i]
	if seg := rest[:i]; seg == "." || seg == ".." || canonicalPath(head) != head {
		return "", false
	}
	return head + "/", true
}

// canonicalPath is p as http.ServeMux cleans it before routing (a leading
// slash, no "." or ".." elements, no repeated slashes, a trailing slash
// kept), which it redirects to when p differs. A clean path is returned as
// it is, without allocating.
func canonicalPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		if len(p) == len(np)+1 && strings.HasPrefix(p, np) {
			return p
		}
		return np + "/"
	}
	return np
}

// capInFlight answers 503 with Retry-After once REFRAKT_MAX_IN_FLIGHT
// requests are being served, so a flood queues nowhere and memory stays
// bounded; liveness and readiness probes are never refused. A request with
// a developer or operator token, and a scrape with PROMETHEUS_BEARER_TOKEN,
// count apart, against a reserve of their own (opsInFlight): public
// requests that wait long (an /assistant wait holds its slot up to 60 s)
// could otherwise fill the cap and lock the operator out of the API that
// would let them act. Only a token that checks out enters the reserve, or
// anyone could fill it (an open /metrics, or /api/dev/ without a token).
// The decision route (/api/check/) counts apart too, against a cap of
// REFRAKT_MAX_IN_FLIGHT of its own (checkInFlight): it answers every
// request of the user's API, and a surge of it must not refuse /assistant
// and the rest, nor their long waits starve the user's API; its token, if
// any, is the client's and is not checked.
func (s *Server) capInFlight(next http.Handler) http.Handler {
	limit := int64(s.cfg.MaxInFlight)
	ops := int64(opsInFlight(s.cfg.MaxInFlight))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "/healthz" || p == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		n, max := &s.inFlight, limit
		switch {
		case strings.HasPrefix(p, prefixCheck):
			n = &s.checkInFlight
		case s.privileged(w, r):
			n, max = &s.opsInFlight, ops
		}
		if v := n.Add(1); max > 0 && v > max {
			n.Add(-1)
			writeError(w, r, s.log, core.Errorf(core.CodeUnavailable, "%s (%d); retry shortly", core.BusyMessage, max))
			return
		}
		defer n.Add(-1)
		next.ServeHTTP(w, r)
	})
}

// privileged reports whether r carries a token that checks out: a
// developer's or an operator's, or the metrics token on a scrape.
func (s *Server) privileged(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path == s.cfg.PrometheusRoute {
		got, ok := bearer(r)
		return ok && s.cfg.PrometheusBearerToken != "" && equalSecret(got, s.cfg.PrometheusBearerToken)
	}
	return s.roleOf(w, r) != RoleNone
}

// roleOf returns the role r's bearer token grants. Checking a token costs
// a SHA-256, and one request may ask up to three times (the in-flight cap,
// the route's auth, the identity headers): the answer is kept on the
// request's statusWriter, which every middleware and handler shares.
func (s *Server) roleOf(w http.ResponseWriter, r *http.Request) Role {
	sw, ok := w.(*statusWriter)
	if !ok {
		return s.tokens.roleOf(r)
	}
	if !sw.roleSet {
		sw.role, sw.roleSet = s.tokens.roleOf(r), true
	}
	return sw.role
}

// opsInFlight is the developer and operator routes' own cap: a sixteenth of
// REFRAKT_MAX_IN_FLIGHT, at least 16 (0: no cap, as for the rest).
func opsInFlight(maxInFlight int) int {
	if maxInFlight <= 0 {
		return 0
	}
	return max(16, maxInFlight/16)
}
