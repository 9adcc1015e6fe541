package daemon

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// The decision route, /api/check/{limit}: a proxy in front of the user's
// service (nginx auth_request, Traefik forwardAuth, Caddy forward_auth,
// Envoy ext_authz in HTTP mode) sends it a sub-request carrying the
// client's headers for every request of the service; it spends a token of
// one of the user's own limits (RATE_LIMITS) for that client and answers
// 200 (let it through) or 429 (refuse it), with the RateLimit headers
// either way. It is not limited by another limit and does no admission
// control: it is the decision.

// checkLimit is what the decision route knows of one limit it decides.
type checkLimit struct {
	name string
	// users says the limit always applies a scope keyed on a user or a
	// tenant, so the user and tenant headers are read (keysOnUser).
	users bool
}

// paramDeny is the decision route's query parameter that turns a refusal's
// 429 into 403 or 401, the only refusals nginx's auth_request passes on.
const paramDeny = "deny"

// handleCheck answers the decision route, on any method (a forward-auth
// sub-request may carry the original one). Only the limits of RATE_LIMITS
// are decided: a built-in limit is its route's (a check of run would spend
// POST /run's tokens), so it and an unknown name are 404.
//
// Identity is the limited routes' (identityOf: the socket peer, or what a
// trusted proxy says in CLIENT_IP_HEADER or X-Forwarded-For; the user,
// tenant and tier headers from a trusted proxy), but for two things a
// sub-request may carry from the client: the query (Envoy appends the
// original path and query to its path_prefix, Caddy keeps it), whose
// user_id and tenant are never read and whose deny never makes an error;
// and the Authorization header (a proxy forwards the client's), so the
// developer token grants no identity headers here, and no token is hashed.
func (s *Server) handleCheck() http.Handler {
	checks := map[string]*checkLimit{}
	for _, l := range s.limiter.LimitSet().Limits {
		if !ratelimit.IsBuiltin(l.Name) {
			checks[l.Name] = &checkLimit{name: l.Name, users: s.keysOnUser(l.Name)}
		}
	}
	enabled := s.cfg.RateLimitEnabled
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("limit")
		c := checks[name]
		if c == nil {
			writeError(w, r, s.log, unknownCheck(name))
			return
		}
		deny := denyStatus(r.URL.RawQuery)
		if !enabled {
			// As the limited routes: every request passes, with no
			// RateLimit headers, since no bucket was asked.
			writeCheckAllowed(w, c.name, nil)
			return
		}
		id, err := s.identity.resolveQuery(r, "", noHeaderGrant, c.users || s.limiter.TenantScopeTargeted(c.name))
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		d, err := s.limiter.Allow(r.Context(), ratelimit.Request{Limit: c.name, IP: id.IP, User: id.User, Tenant: id.Tenant, Premium: id.Premium})
		if err != nil {
			writeError(w, r, s.log, err) // 400 without the identity the limit needs; 503 under deny
			return
		}
		if !d.Unchecked {
			setLimitHeaders(w.Header(), &d)
		}
		if !d.Allowed {
			writeRefusal(w, &d, deny)
			return
		}
		figures := &d
		if d.Unchecked {
			figures = nil // let through unchecked: no bucket figures, the bare body
		}
		writeCheckAllowed(w, c.name, figures)
	})
}

// noHeaderGrant is the decision route's answer to "may this request name
// its user, tenant and tier without a trusted proxy": never.
func noHeaderGrant() bool { return false }

// unknownCheck is the decision route's 404 for a name it does not decide.
func unknownCheck(name string) error {
	if ratelimit.IsBuiltin(name) {
		return core.Errorf(core.CodeNotFound, "limit %q is built in: it limits its own route, and only the limits of RATE_LIMITS are decided here", name)
	}
	return core.Errorf(core.CodeNotFound, "no limit %q: the decision route decides the limits of RATE_LIMITS (an earlier daemon, or one started without it, has none)", name)
}

// denyStatus reads the deny parameter of the decision route's query
// without allocating: absent, a refusal is 429; deny=403 or deny=401 makes
// it that. The query may be the client's (Caddy keeps it, Envoy appends
// it), so nothing in it may turn into an error the client sees: a value
// other than 429, 403 or 401 is ignored, and a deny given again with
// another value leaves the refusal a 429. The other parameters are not the
// route's to judge.
func denyStatus(raw string) int {
	status := 0
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		v, ok := strings.CutPrefix(part, paramDeny+"=")
		if !ok {
			continue
		}
		var got int
		switch v {
		case "429":
			got = http.StatusTooManyRequests
		case "403":
			got = http.StatusForbidden
		case "401":
			got = http.StatusUnauthorized
		default:
			continue
		}
		if status != 0 && status != got {
			return http.StatusTooManyRequests
		}
		status = got
	}
	if status == 0 {
		return http.StatusTooManyRequests
	}
	return status
}

// writeCheckAllowed writes the decision route's 200: {"allowed":true,
// "limit":…} and, for a decision d a bucket made, its scope, key,
// capacity, remaining tokens and seconds until full. Built by hand in a
// pooled buffer: it answers every request of the user's API.
func writeCheckAllowed(w http.ResponseWriter, limit string, d *ratelimit.Decision) {
	buf := checkBodies.Get().(*[]byte)
	defer checkBodies.Put(buf)
	b := append((*buf)[:0], `{"allowed":true,"limit":`...)
	b = appendJSONString(b, limit)
	if d != nil {
		b = append(b, `,"scope":`...)
		b = appendJSONString(b, string(d.Scope))
		b = append(b, `,"key":"`...)
		b = append(append(append(append(b, d.Limit...), ':'), d.Scope...), ':')
		b = appendJSONEscaped(b, d.Identity)
		b = append(b, `","capacity":`...)
		b = strconv.AppendInt(b, int64(d.Capacity), 10)
		b = append(b, `,"remaining":`...)
		b = strconv.AppendInt(b, int64(d.Remaining), 10)
		b = append(b, `,"reset_seconds":`...)
		b = strconv.AppendInt(b, ceilSeconds(d.Reset), 10)
		if d.Shadow {
			b = append(b, `,"shadow_limited":true`...)
		}
	}
	b = append(b, "}\n"...)
	setJSONHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	if cap(b) <= maxPooledBuffer {
		*buf = b
	}
}

// checkBodies are the buffers the decision route's answers are built in:
// one on the stack escapes to the heap through ResponseWriter.Write.
var checkBodies = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	return append(appendJSONEscaped(append(b, '"'), s), '"')
}

// appendJSONEscaped appends s escaped for the inside of a JSON string: as
// it is when it is printable ASCII without a quote or backslash (names,
// addresses, most user ids), else as encoding/json escapes it.
func appendJSONEscaped(b []byte, s string) []byte {
	if plainASCII(s) && !strings.ContainsAny(s, "<>&") {
		return append(b, s...)
	}
	q, _ := json.Marshal(s)
	return append(b, q[1:len(q)-1]...)
}
