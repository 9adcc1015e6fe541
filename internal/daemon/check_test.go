package daemon

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/redistest"
)

// withLimits gives a test server RATE_LIMITS v.
func withLimits(t *testing.T, v string) func(*config.Config) {
	t.Helper()
	ls, err := ratelimit.ParseLimits(v)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *config.Config) { c.RateLimits = ls }
}

// checkStatuses sends rq n times and returns the statuses.
func checkStatuses(t *testing.T, h http.Handler, rq request, n int) []int {
	t.Helper()
	out := make([]int, n)
	for i := range out {
		resp, _ := send(t, h, rq)
		out[i] = resp.StatusCode
	}
	return out
}

func statuses(codes ...int) []int { return codes }

// TestCheckRoute: the decision route spends a limit of RATE_LIMITS: its
// burst is allowed (200, the RateLimit headers, a JSON body), then 429
// with Retry-After, the headers and the error naming the limit and scope.
func TestCheckRoute(t *testing.T) {
	s := newTestServer(t, withLimits(t, "api=3/1m"))
	rq := request{path: "/api/check/api", peer: "203.0.113.7:1234"}
	for i := range 3 {
		resp, body := send(t, s, rq)
		want := map[string]any{"allowed": true, "limit": "api", "scope": "ip", "key": "api:ip:203.0.113.7",
			"capacity": 3.0, "remaining": float64(2 - i), "reset_seconds": float64(20 * (i + 1))}
		if resp.StatusCode != 200 || !cmp.Equal(want, body) {
			t.Fatalf("check %d: %d %v; want 200 %v", i+1, resp.StatusCode, body, want)
		}
		if resp.Header.Get("RateLimit-Limit") != "3" || resp.Header.Get("RateLimit-Policy") != `"api:ip";q=3;w=60` {
			t.Errorf("check %d: headers %v", i+1, resp.Header)
		}
	}
	resp, body := send(t, s, rq)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("RateLimit-Remaining") != "0" || errCode(body) != "limited" {
		t.Fatalf("4th check: %d %v %v; want 429 limited with Retry-After", resp.StatusCode, resp.Header, body)
	}
	details := body["error"].(map[string]any)["details"].(map[string]any)
	if details["limit"] != "api" || details["scope"] != "ip" || details["key"] != "api:ip:203.0.113.7" {
		t.Errorf("429 details %v", details)
	}
	// Another client has its own bucket; a built-in route's is untouched.
	if resp, _ := send(t, s, request{path: "/api/check/api", peer: "203.0.113.8:1"}); resp.StatusCode != 200 {
		t.Errorf("another client: %d, want 200", resp.StatusCode)
	}
	// The decisions are counted under the limit's name.
	_, metrics := scrapeText(t, s)
	for _, w := range []string{`refrakt_ratelimit_decisions_total{decision="allowed",limit="api",scope="ip"} 4`,
		`refrakt_ratelimit_decisions_total{decision="limited",limit="api",scope="ip"} 1`,
		`refrakt_http_requests_total{code="429",route="/api/check/{limit}"} 1`} {
		if !strings.Contains(metrics, w) {
			t.Errorf("metrics lack %s", w)
		}
	}
}

// scrapeText returns the metrics page.
func scrapeText(t *testing.T, h http.Handler) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Code, rec.Body.String()
}

// TestCheckIdentity: the route keys on the client a trusted proxy names
// (X-Forwarded-For, CLIENT_IP_HEADER) and on the peer when the peer is not
// trusted; a user scope keys on the user header from a trusted proxy;
// the premium tier multiplies the burst; a query's user_id is not read.
func TestCheckIdentity(t *testing.T) {
	s := newTestServer(t, withLimits(t, "api=2/1m; per-user=2/1m scopes=user; acct=1/1m scopes=user_tenant"))
	proxy := "127.0.0.1:5555"
	t.Run("X-Forwarded-For from a trusted proxy", func(t *testing.T) {
		a := request{path: "/api/check/api", peer: proxy, headers: map[string]string{"X-Forwarded-For": "198.51.100.1"}}
		b := request{path: "/api/check/api", peer: proxy, headers: map[string]string{"X-Forwarded-For": "198.51.100.2"}}
		if got := checkStatuses(t, s, a, 3); !cmp.Equal(statuses(200, 200, 429), got) {
			t.Errorf("client a: %v", got)
		}
		if got := checkStatuses(t, s, b, 1); !cmp.Equal(statuses(200), got) {
			t.Errorf("client b after a's burst: %v (keyed on the proxy?)", got)
		}
		if _, body := send(t, s, request{path: "/api/check/api", peer: proxy, headers: map[string]string{"CF-Connecting-IP": "198.51.100.3"}}); body["key"] != "api:ip:198.51.100.3" {
			t.Errorf("client IP header: %v", body)
		}
	})
	t.Run("an untrusted peer's X-Forwarded-For is ignored", func(t *testing.T) {
		peer := "192.0.2.50:1"
		for i, xff := range []string{"198.51.100.10", "198.51.100.11", "198.51.100.12"} {
			resp, body := send(t, s, request{path: "/api/check/api", peer: peer, headers: map[string]string{"X-Forwarded-For": xff, "X-User-ID": "u9"}})
			if i < 2 && body["key"] != "api:ip:192.0.2.50" || i == 2 && resp.StatusCode != 429 {
				t.Errorf("check %d: %d %v; want keyed on the peer, the third refused", i+1, resp.StatusCode, body)
			}
		}
	})
	t.Run("user scope", func(t *testing.T) {
		u1 := request{path: "/api/check/per-user", peer: proxy, headers: map[string]string{"X-User-ID": "u1"}}
		if got := checkStatuses(t, s, u1, 3); !cmp.Equal(statuses(200, 200, 429), got) {
			t.Errorf("u1: %v", got)
		}
		if _, body := send(t, s, request{path: "/api/check/per-user", peer: proxy, headers: map[string]string{"X-User-ID": "u2"}}); body["key"] != "per-user:user:u2" {
			t.Errorf("u2: %v", body)
		}
		// No user: refused as the limited routes refuse a request
		// without the identity their limit needs (400).
		resp, body := send(t, s, request{path: "/api/check/per-user", peer: proxy})
		if resp.StatusCode != 400 || !strings.Contains(errMessage(body), "needs a user") {
			t.Errorf("no user: %d %v", resp.StatusCode, body)
		}
		// Nor from the query, which may be the client's (Envoy).
		resp, _ = send(t, s, request{path: "/api/check/per-user?user_id=u1", peer: proxy})
		if resp.StatusCode != 400 {
			t.Errorf("user from the query: %d, want 400 (not read)", resp.StatusCode)
		}
		// An untrusted peer's user header is not believed.
		resp, _ = send(t, s, request{path: "/api/check/per-user", peer: "192.0.2.60:1", headers: map[string]string{"X-User-ID": "u3"}})
		if resp.StatusCode != 400 {
			t.Errorf("untrusted user header: %d, want 400", resp.StatusCode)
		}
		if _, body := send(t, s, request{path: "/api/check/acct", peer: proxy, headers: map[string]string{"X-User-ID": "u1", "X-Tenant-ID": "t1"}}); body["key"] != "acct:user_tenant:u1:t1" {
			t.Errorf("user_tenant: %v", body)
		}
	})
	t.Run("premium", func(t *testing.T) {
		prem := request{path: "/api/check/api", peer: proxy, headers: map[string]string{"X-Forwarded-For": "198.51.100.20", "X-RateLimit-Tier": "premium"}}
		resp, body := send(t, s, prem)
		if resp.StatusCode != 200 || body["capacity"] != 6.0 || resp.Header.Get("RateLimit-Limit") != "6" {
			t.Errorf("premium: %d %v", resp.StatusCode, body)
		}
		if got := checkStatuses(t, s, prem, 6); !cmp.Equal(statuses(200, 200, 200, 200, 200, 429), got) {
			t.Errorf("premium burst: %v", got)
		}
	})
}

// TestCheckOverridesAndBans: an override set through the API changes the
// route's answer; a ban refuses with its end; reset lifts it; the config
// and the snapshot name the limit.
func TestCheckOverridesAndBans(t *testing.T) {
	s := newTestServer(t, withLimits(t, "api=5/1m"))
	rq := request{path: "/api/check/api", peer: "203.0.113.9:1"}
	if resp, body := send(t, s, request{method: "POST", path: "/api/dev/rate-limits/config", token: devToken, body: `{"target":"api:ip","capacity":1,"window_seconds":60}`}); resp.StatusCode != 200 {
		t.Fatalf("override: %d %v", resp.StatusCode, body)
	}
	if got := checkStatuses(t, s, rq, 2); !cmp.Equal(statuses(200, 429), got) {
		t.Errorf("under the override of capacity 1: %v", got)
	}
	if resp, body := send(t, s, request{method: "POST", path: "/api/dev/rate-limits/reset", token: devToken, body: `{"key":"api:ip:203.0.113.9"}`}); resp.StatusCode != 200 {
		t.Fatalf("reset: %d %v", resp.StatusCode, body)
	}
	if resp, body := send(t, s, request{method: "POST", path: "/api/dev/rate-limits/ban", token: devToken, body: `{"key":"api:ip:203.0.113.9","seconds":120}`}); resp.StatusCode != 200 {
		t.Fatalf("ban: %d %v", resp.StatusCode, body)
	}
	resp, body := send(t, s, rq)
	details, _ := body["error"].(map[string]any)["details"].(map[string]any)
	if resp.StatusCode != 429 || details["banned_until"] == nil || !strings.Contains(errMessage(body), "banned by rate limit \"api\"") {
		t.Errorf("banned: %d %v", resp.StatusCode, body)
	}
	// The config lists the limit; the snapshot finds its bucket by key.
	_, cfg := send(t, s, request{path: "/api/dev/rate-limits/config", token: devToken})
	found := false
	for _, l := range cfg["limits"].([]any) {
		if l.(map[string]any)["name"] == "api" {
			found = true
			if l.(map[string]any)["burst"] != 5.0 || l.(map[string]any)["premium_burst"] != 15.0 {
				t.Errorf("config of api: %v", l)
			}
		}
	}
	if !found {
		t.Errorf("GET config lacks api: %v", cfg)
	}
	if resp, body := send(t, s, request{path: "/api/obs/rate-limits?key=api:ip:203.0.113.9", token: opToken}); resp.StatusCode != 200 || !strings.Contains(strings.ToLower(mustJSON(t, body)), "api:ip:203.0.113.9") {
		t.Errorf("snapshot of the key: %d %v", resp.StatusCode, body)
	}
}

// TestCheckErrorsAndForms: unknown and built-in limits are 404; the nginx
// option turns a refusal into 403 or 401; HEAD, POST and Envoy's appended
// path are decided as GET; RATE_LIMIT_ENABLED=false allows always.
func TestCheckErrorsAndForms(t *testing.T) {
	s := newTestServer(t, withLimits(t, "api=1/1m"))
	for _, c := range []struct{ path, want string }{
		{"/api/check/nope", "no limit"},
		{"/api/check/run", "built in"},
		{"/api/check/rl-test", "built in"},
	} {
		resp, body := send(t, s, request{path: c.path, peer: "203.0.113.1:1"})
		if resp.StatusCode != 404 || errCode(body) != "not_found" || !strings.Contains(errMessage(body), c.want) {
			t.Errorf("%s: %d %v", c.path, resp.StatusCode, body)
		}
	}
	// A check of run spent none of POST /run's tokens.
	if resp, _ := send(t, s, request{path: "/api/dev/rate-limits/config", token: devToken}); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}

	peer := "203.0.113.2:1"
	if resp, _ := send(t, s, request{method: "HEAD", path: "/api/check/api", peer: peer}); resp.StatusCode != 200 || resp.Header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("HEAD: %d %v", resp.StatusCode, resp.Header)
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/check/api?deny=403", 403},
		{"POST", "/api/check/api?deny=401", 401},
		{"PUT", "/api/check/api", 429},
		{"DELETE", "/api/check/api/users/7?x=1&deny=403", 403},
		// The query may be the client's: a bad or conflicting deny
		// is ignored, never a 400 the client would see.
		{"GET", "/api/check/api?deny=500", 429},
		{"GET", "/api/check/api?deny=true", 429},
		{"GET", "/api/check/api?deny=", 429},
		{"GET", "/api/check/api?deny=403&deny=401", 429},
		{"GET", "/api/check/api?deny=403&deny=x", 403},
		{"GET", "/api/check/api?deny=403&deny=403", 403},
		{"GET", "/api/check/api/items?deny=true", 429},
	} {
		resp, body := send(t, s, request{method: c.method, path: c.path, peer: peer, body: "ignored"})
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d %v, want %d", c.method, c.path, resp.StatusCode, body, c.want)
		}
		if resp.Header.Get("Retry-After") == "" || errCode(body) != "limited" {
			t.Errorf("%s %s: %v %v, want Retry-After and the limited error", c.method, c.path, resp.Header, body)
		}
	}
	if resp, _ := send(t, s, request{method: "POST", path: "/api/check/api/some/path", peer: "203.0.113.3:1"}); resp.StatusCode != 200 {
		t.Errorf("Envoy's appended path: %d", resp.StatusCode)
	}

	off := newTestServer(t, withLimits(t, "api=1/1m"), func(c *config.Config) { c.RateLimitEnabled = false })
	for range 3 {
		resp, body := send(t, off, request{path: "/api/check/api", peer: peer})
		if resp.StatusCode != 200 || body["allowed"] != true || resp.Header.Get("RateLimit-Limit") != "" {
			t.Errorf("limiting off: %d %v %v", resp.StatusCode, resp.Header, body)
		}
	}
	if resp, _ := send(t, off, request{path: "/api/check/nope", peer: peer}); resp.StatusCode != 404 {
		t.Errorf("limiting off, unknown limit: %d", resp.StatusCode)
	}
}

// TestCheckBackendDownAllowed: under RATE_LIMIT_ON_BACKEND_ERROR=allow a
// decision the store could not make lets the request through unchecked:
// 200, no RateLimit headers (no bucket was asked), and the bare body.
func TestCheckBackendDownAllowed(t *testing.T) {
	r := redistest.Start(t)
	s, _ := newRedisServer(t, r, withLimits(t, "api=1/1m"), func(c *config.Config) { c.OnBackendError = "allow" })
	r.Stop()
	for i := range 2 { // beyond the burst of 1: nothing is counted
		rec := raw(t, s, "GET", "/api/check/api", "", "")
		if diff := cmp.Diff([2]any{200, `{"allowed":true,"limit":"api"}` + "\n"}, [2]any{rec.Code, rec.Body.String()}); diff != "" {
			t.Errorf("check %d with Redis down (-want +got):\n%s", i+1, diff)
		}
		for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy", "Retry-After"} {
			if v := rec.Header().Get(h); v != "" {
				t.Errorf("check %d with Redis down: %s %q, want none", i+1, h, v)
			}
		}
	}
}

// TestCheckRouteAllocations holds the decision route to what the limited
// routes cost beyond the limiter: the header values and the response.
func TestCheckRouteAllocations(t *testing.T) {
	s := newTestServer(t, withLimits(t, "api=1000000/1h"))
	h := s.handleCheck()
	r := httptest.NewRequest("GET", "/api/check/api", nil)
	r.SetPathValue("limit", "api")
	r.RemoteAddr = "203.0.113.5:1"
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r)
	if w.code != 200 {
		t.Fatalf("status %d", w.code)
	}
	got := testing.AllocsPerRun(200, func() {
		clear(w.h)
		h.ServeHTTP(w, r)
	})
	// setLimitHeaders' string and slice, writeCheckAllowed's header slice.
	if got > 3 {
		t.Errorf("the decision route allocates %.0f times per request, want at most 3", got)
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// mustJSON is v as JSON text.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCheckClientPath: below /api/check/{limit}/ the path is the client's
// (Envoy appends it) and ignored, canonical or not; /api/check/{limit}
// itself keeps the usual rules.
func TestCheckClientPath(t *testing.T) {
	s := newTestServer(t, withLimits(t, "api=100/1m"))
	for _, p := range []string{"/api/check/api//x", "/api/check/api/./x", "/api/check/api/a/../../..", "/api/check/api/x//", "/api/check/api//"} {
		resp, body := send(t, s, request{path: p, peer: "203.0.113.40:1"})
		if resp.StatusCode != 200 || body["limit"] != "api" {
			t.Errorf("%s: %d %v, want 200 (the rest ignored)", p, resp.StatusCode, body)
		}
	}
	for _, p := range []string{"/api/check//api", "/api/check/./api", "/api/check/../check/api"} {
		resp, body := send(t, s, request{path: p, peer: "203.0.113.40:1"})
		if resp.StatusCode != 404 || !strings.Contains(errMessage(body), "not canonical") {
			t.Errorf("%s: %d %v, want the usual 404", p, resp.StatusCode, body)
		}
	}
}

// TestCheckTokenGrantsNoIdentity: the Authorization header a proxy
// forwards is the client's, so on the decision route the developer token
// does not let an untrusted peer name its user or tier.
func TestCheckTokenGrantsNoIdentity(t *testing.T) {
	s := newTestServer(t, withLimits(t, "uapi=3/1m scopes=user; api=3/1m"))
	peer := "192.0.2.70:1"
	resp, body := send(t, s, request{path: "/api/check/uapi", peer: peer, token: devToken, headers: map[string]string{"X-User-ID": "victim"}})
	if resp.StatusCode != 400 {
		t.Errorf("token holder naming a user behind an untrusted peer: %d %v, want 400 (no user)", resp.StatusCode, body)
	}
	resp, body = send(t, s, request{path: "/api/check/api", peer: peer, token: devToken, headers: map[string]string{"X-RateLimit-Tier": "premium"}})
	if resp.StatusCode != 200 || body["capacity"] != 3.0 {
		t.Errorf("token holder asking for premium: %d %v, want capacity 3", resp.StatusCode, body)
	}
}

// TestCheckTenantOverride: a limit without a tenant scope reads the tenant
// header once an override of NAME:tenant is in force, so that tenant's
// bucket refuses every client of the tenant.
func TestCheckTenantOverride(t *testing.T) {
	s := newTestServer(t, withLimits(t, "api=100/1m"))
	if resp, body := send(t, s, request{method: "POST", path: "/api/dev/rate-limits/config", token: devToken, body: `{"target":"api:tenant","capacity":1,"window_seconds":60}`}); resp.StatusCode != 200 {
		t.Fatalf("override: %d %v", resp.StatusCode, body)
	}
	proxy := "127.0.0.1:5555"
	var got []int
	for _, xff := range []string{"198.51.100.61", "198.51.100.62"} {
		resp, _ := send(t, s, request{path: "/api/check/api", peer: proxy, headers: map[string]string{"X-Forwarded-For": xff, "X-Tenant-ID": "t1"}})
		got = append(got, resp.StatusCode)
	}
	if !cmp.Equal(statuses(200, 429), got) {
		t.Errorf("two clients of tenant t1 under api:tenant capacity 1: %v, want [200 429]", got)
	}
}

// TestCheckInFlightApart: the decision route has an in-flight cap of its
// own: the other routes at their cap (long /assistant waits) leave checks
// passing, and checks at theirs leave the other routes served.
func TestCheckInFlightApart(t *testing.T) {
	s := newTestServer(t, withLimits(t, "api=100/1m"), func(c *config.Config) { c.MaxInFlight = 2 })
	s.inFlight.Store(2)
	if resp, body := send(t, s, request{path: "/api/check/api", peer: "203.0.113.50:1"}); resp.StatusCode != 200 {
		t.Errorf("check with the other routes at their cap: %d %v, want 200", resp.StatusCode, body)
	}
	if resp, _ := send(t, s, request{path: "/api/public/tenant-meta", peer: "203.0.113.50:1"}); resp.StatusCode != 503 {
		t.Errorf("another route at its cap: %d, want 503", resp.StatusCode)
	}
	s.inFlight.Store(0)
	s.checkInFlight.Store(2)
	if resp, _ := send(t, s, request{path: "/api/check/api/x", peer: "203.0.113.50:1"}); resp.StatusCode != 503 {
		t.Errorf("check at its own cap: %d, want 503", resp.StatusCode)
	}
	if resp, body := send(t, s, request{path: "/api/public/tenant-meta", peer: "203.0.113.50:1"}); resp.StatusCode == 503 {
		t.Errorf("another route with the checks at their cap: %d %v", resp.StatusCode, body)
	}
	s.checkInFlight.Store(0)
}
