package daemon

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// Who may call a route. The table below is the README's auth table
// (in README.md), checked against routes.go and against the server.
const (
	whoAnyone    = "anyone"
	whoOperator  = "operator or developer"
	whoDeveloper = "developer"
	whoMetrics   = "metrics bearer when PROMETHEUS_BEARER_TOKEN is set"
)

// authTable is every route of routes.go and who may call it. A route added
// to routes.go without a row here fails TestEveryRouteHasItsRole.
var authTable = map[string]string{
	"GET /healthz":                       whoAnyone,
	"GET /readyz":                        whoAnyone,
	"POST /run":                          whoAnyone,
	"GET /run/{id}":                      whoAnyone,
	"POST /assistant":                    whoAnyone,
	"GET /api/public/tenant-meta":        whoAnyone,
	"GET /api/secure/ping":               whoAnyone, // needs a user and tenant a trusted proxy (or the developer token) vouches for
	"GET /api/dev/jobs":                  whoDeveloper,
	"POST /api/dev/jobs/enqueue":         whoDeveloper,
	"POST /api/dev/jobs/enqueue-batch":   whoDeveloper,
	"POST /api/dev/jobs/run-next":        whoDeveloper,
	"POST /api/dev/jobs/tick":            whoDeveloper,
	"POST /api/dev/jobs/{id}/run":        whoDeveloper,
	"POST /api/dev/jobs/{id}/cancel":     whoDeveloper,
	"POST /api/dev/jobs/{id}/requeue":    whoDeveloper,
	"DELETE /api/dev/queues":             whoDeveloper,
	"POST /api/dev/queues/requeue-dead":  whoDeveloper,
	"POST /api/dev/queues/pause":         whoDeveloper,
	"POST /api/dev/queues/resume":        whoDeveloper,
	"GET /api/dev/whoami":                whoDeveloper,
	"GET /api/dev/rl-test":               whoDeveloper,
	"GET /api/dev/rate-limits/config":    whoDeveloper,
	"POST /api/dev/rate-limits/config":   whoDeveloper,
	"DELETE /api/dev/rate-limits/config": whoDeveloper,
	"POST /api/dev/rate-limits/reset":    whoDeveloper,
	"POST /api/dev/rate-limits/ban":      whoDeveloper,
	"GET /api/obs/jobs":                  whoOperator,
	"GET /api/obs/whoami":                whoOperator,
	"GET /api/obs/snapshot":              whoOperator,
	"GET /api/obs/daemons":               whoOperator,
	"GET /api/obs/rate-limits":           whoOperator,
	"GET /metrics":                       whoMetrics, // PROMETHEUS_METRICS_ROUTE
	"/api/check/{limit}":                 whoAnyone,  // the decision route: a proxy's sub-request, any method
	"/api/check/{limit}/{rest...}":       whoAnyone,  // the same, with Envoy's appended path
}

// routesInSource parses routes.go and returns each registered pattern with
// the wrapper that guards it: "dev", "obs" or "" (none).
func routesInSource(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "routes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 2 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Handle" {
			return true
		}
		var pattern string
		switch a := call.Args[0].(type) {
		case *ast.BasicLit:
			pattern, _ = strconv.Unquote(a.Value)
		case *ast.BinaryExpr: // "GET "+s.cfg.PrometheusRoute
			lit, _ := a.X.(*ast.BasicLit)
			left, _ := strconv.Unquote(lit.Value)
			pattern = left + config.Default().PrometheusRoute
		default:
			t.Fatalf("routes.go: a route pattern this test cannot read at %s", fset.Position(call.Pos()))
		}
		guard := ""
		if inner, ok := call.Args[1].(*ast.CallExpr); ok {
			if id, ok := inner.Fun.(*ast.Ident); ok && (id.Name == "dev" || id.Name == "obs") {
				guard = id.Name
			}
		}
		out[pattern] = guard
		return true
	})
	return out
}

// TestEveryRouteHasItsRole walks routes.go: every route must have a row in
// authTable, its guard in the source must be the one the row says, and the
// table must hold no route that is gone. A new route without a decision
// about who may call it fails here.
func TestEveryRouteHasItsRole(t *testing.T) {
	src := routesInSource(t)
	if len(src) < 20 {
		t.Fatalf("found only %d routes in routes.go; the parser missed them", len(src))
	}
	wantGuard := map[string]string{whoDeveloper: "dev", whoOperator: "obs", whoAnyone: "", whoMetrics: ""}
	for pattern, guard := range src {
		who, ok := authTable[pattern]
		if !ok {
			t.Errorf("route %q is not in the auth table: decide who may call it (security_test.go, README.md)", pattern)
			continue
		}
		if guard != wantGuard[who] {
			t.Errorf("route %q: guarded by %q in routes.go, the table says %q", pattern, guard, who)
		}
	}
	for pattern := range authTable {
		if _, ok := src[pattern]; !ok {
			t.Errorf("auth table row %q has no route in routes.go", pattern)
		}
	}
}

// TestRouteAuthOverHTTP sends every route of the table without a token,
// with a wrong one, with the operator's and with the developer's, and
// checks the answer the role promises: 401, 403, or through.
func TestRouteAuthOverHTTP(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.PrometheusBearerToken = "metrics-token-0123456789" })
	const wrong = "not-a-token-at-all-0123456789"
	for pattern, who := range authTable {
		if who == whoMetrics {
			continue // its own token: the subtest below
		}
		method, path, _ := strings.Cut(pattern, " ")
		if strings.HasPrefix(pattern, "/") { // a route of any method
			method, path = "GET", pattern
		}
		path = strings.ReplaceAll(path, "{id}", "AAAAAAAAAAAAAAAAAAAAAA")
		path = strings.NewReplacer("{limit}", "api", "{rest...}", "x").Replace(path)
		for _, tok := range []struct{ name, token string }{{"none", ""}, {"wrong", wrong}, {"operator", opToken}, {"developer", devToken}} {
			t.Run(pattern+"/"+tok.name, func(t *testing.T) {
				resp, _ := do(t, s, method, path, tok.token, "{}")
				got := resp.StatusCode
				var want []int // the statuses the role allows; nil: anything but 401/403
				switch {
				case who == whoDeveloper && tok.token != devToken:
					want = []int{401}
					if tok.token == opToken {
						want = []int{403}
					}
				case who == whoOperator && (tok.token == "" || tok.token == wrong):
					want = []int{401}
				}
				if want == nil {
					if got == 401 || got == 403 {
						t.Fatalf("%s with %s token: %d, the route is open to this caller", pattern, tok.name, got)
					}
					return
				}
				if !slices.Contains(want, got) {
					t.Fatalf("%s with %s token: %d, want %v", pattern, tok.name, got, want)
				}
			})
		}
	}
	t.Run("metrics", func(t *testing.T) {
		for _, tc := range []struct {
			name, token string
			want        int
		}{{"none", "", 401}, {"developer", devToken, 401}, {"metrics", "metrics-token-0123456789", 200}} {
			if resp, _ := do(t, s, "GET", "/metrics", tc.token, ""); resp.StatusCode != tc.want {
				t.Errorf("/metrics with %s token: %d, want %d", tc.name, resp.StatusCode, tc.want)
			}
		}
	})
}

// TestAuthTableDocumented: every route of the table appears in
// the README's auth table, with the same role.
func TestAuthTableDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for pattern, who := range authTable {
		row := "| `" + pattern + "` | " + who + " |"
		if !strings.Contains(doc, row) {
			t.Errorf("README.md's auth table lacks the row %q", row)
		}
	}
}

// TestTokenOnlyInHeader: a token in the query string (any usual name) or in
// a cookie grants nothing; only the Authorization header does.
func TestTokenOnlyInHeader(t *testing.T) {
	s := newTestServer(t)
	tests := []struct {
		name string
		req  func() *http.Request
		want int
	}{
		{"query token", func() *http.Request { return httptest.NewRequest("GET", "/api/dev/whoami?token="+devToken, nil) }, 401},
		{"query access_token", func() *http.Request {
			return httptest.NewRequest("GET", "/api/dev/whoami?access_token="+devToken, nil)
		}, 401},
		{"query bearer", func() *http.Request { return httptest.NewRequest("GET", "/api/obs/whoami?bearer="+devToken, nil) }, 401},
		{"cookie", func() *http.Request {
			r := httptest.NewRequest("GET", "/api/dev/whoami", nil)
			r.AddCookie(&http.Cookie{Name: "token", Value: devToken})
			return r
		}, 401},
		{"basic auth with the token", func() *http.Request {
			r := httptest.NewRequest("GET", "/api/dev/whoami", nil)
			r.SetBasicAuth("developer", devToken)
			return r
		}, 401},
		{"header", func() *http.Request {
			r := httptest.NewRequest("GET", "/api/dev/whoami", nil)
			r.Header.Set("Authorization", "Bearer "+devToken)
			return r
		}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, tc.req())
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
		})
	}
}

// TestUntrustedIdentityHeadersIgnored: from a peer outside TRUSTED_PROXIES,
// X-Forwarded-For, CF-Connecting-IP, X-User-ID, X-Tenant-ID and
// X-RateLimit-Tier change nothing: the bucket is the peer's, secure-ping
// sees no user, and the limit is the standard one.
func TestUntrustedIdentityHeadersIgnored(t *testing.T) {
	s, _ := newLimitServer(t)
	spoof := map[string]string{
		"X-Forwarded-For": "198.51.100.77", "CF-Connecting-IP": "198.51.100.78",
		"X-User-ID": "admin", "X-UserID": "admin", "X-Tenant-ID": "t1", "X-RateLimit-Tier": "premium",
	}
	resp, _ := send(t, s, request{method: "GET", path: "/api/public/tenant-meta?tenant=t1", peer: "203.0.113.9:5000", headers: spoof})
	if resp.StatusCode != 200 {
		t.Fatalf("tenant-meta: %d", resp.StatusCode)
	}
	if got := resp.Header.Get("RateLimit-Limit"); got != "60" {
		t.Errorf("RateLimit-Limit %q: want the standard 60, premium must not apply from an untrusted peer", got)
	}
	resp, body := send(t, s, request{method: "GET", path: "/api/secure/ping?user_id=admin&tenant=t1", peer: "203.0.113.9:5000", headers: spoof})
	if resp.StatusCode != 400 {
		t.Errorf("secure-ping from an untrusted peer with identity headers: %d %v, want 400", resp.StatusCode, body)
	}
	rec := raw(t, s, "GET", "/api/obs/rate-limits?limit=1000", devToken, "")
	snap := rec.Body.String()
	if !strings.Contains(snap, "tenant-meta:ip:203.0.113.9") {
		t.Errorf("no bucket for the peer: %s", snap)
	}
	for _, leaked := range []string{"198.51.100.77", "198.51.100.78", "admin"} {
		if strings.Contains(snap, leaked) {
			t.Errorf("a spoofed identity %q was keyed: %s", leaked, snap)
		}
	}
}

// TestTokensNeverLogged runs the real daemon at debug level, sends requests
// with the right token, a wrong one and a token in the query string, and
// greps the whole log for all of them. It also checks the generated token
// file: mode 0600 in a 0700 directory, its content never logged.
func TestTokensNeverLogged(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, []string{"REFRAKT_DEVELOPER_TOKEN=", "LOG_LEVEL=debug", "REFRAKT_OPERATOR_TOKEN=op-secret-for-the-log-test-42", "PROMETHEUS_BEARER_TOKEN=prom-secret-for-the-log-test-42"})
	path := filepath.Join(d.StateDir, "refrakt", "token")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("generated token file: %v\n%s", err, d.Log())
	}
	generated := strings.TrimSpace(string(b))
	if len(generated) < 32 {
		t.Fatalf("generated token %d bytes", len(generated))
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", p, st.Mode().Perm(), want)
		}
	}
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	wrong := "wrong-secret-for-the-log-test-42"
	calls := []struct{ path, token string }{
		{"/api/dev/whoami", generated}, {"/api/obs/whoami", "op-secret-for-the-log-test-42"}, {"/api/dev/whoami", wrong},
		{"/api/dev/whoami?token=" + generated, ""}, {"/metrics", "prom-secret-for-the-log-test-42"}, {"/metrics", wrong},
		{"/api/dev/nope", generated}, {"/api/dev/jobs?limit=x", generated},
	}
	for _, c := range calls {
		req, _ := http.NewRequest("GET", d.URL+c.path, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// A graceful stop logs the last lines; then the log is complete.
	d.Signal(syscall.SIGTERM)
	d.Wait(15 * time.Second)
	log := d.Log()
	if !strings.Contains(log, "level=DEBUG") || !strings.Contains(log, "/api/dev/whoami") {
		t.Fatalf("the debug log did not record the requests, so this test proves nothing:\n%s", log)
	}
	for _, secret := range []string{generated, "op-secret-for-the-log-test-42", "prom-secret-for-the-log-test-42", wrong} {
		if strings.Contains(log, secret) {
			t.Errorf("a token reached the log: %q\n%s", secret, log)
		}
	}
	if !strings.Contains(log, path) {
		t.Errorf("the log does not say where the generated token is (%s)", path)
	}
}

// TestErrorsDoNotLeakInternals: with Redis gone, every route answers its
// status with a generic message: no addresses, Go errors, stack traces or
// file names. A panic's 500 is covered by TestPanicBecomes500.
func TestErrorsDoNotLeakInternals(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	s, _ := newRedisServer(t, r)
	r.Stop()
	leaks := []string{r.Addr(), strconv.Itoa(r.Port), "dial tcp", "connection refused", "redis:", "goroutine", ".go:", "EOF"}
	statuses := map[int]int{}
	for pattern, who := range authTable {
		if who == whoMetrics {
			continue // Prometheus text, not an error
		}
		method, path, body := sampleRequest(pattern)
		rec := raw(t, s, method, path, devToken, body)
		statuses[rec.Code]++
		for _, l := range leaks {
			if strings.Contains(rec.Body.String(), l) {
				t.Errorf("%s with Redis down: %d %s leaks %q", pattern, rec.Code, rec.Body, l)
			}
		}
		if rec.Code == 500 && !strings.Contains(rec.Body.String(), `"message":"internal error"`) {
			t.Errorf("%s: a 500 with a specific message: %s", pattern, rec.Body)
		}
	}
	if statuses[503] == 0 {
		t.Fatalf("no route answered 503 with Redis down (%v): the backend was not really in use", statuses)
	}
}

// TestBootErrorsDoNotLeak: while the daemon cannot reach Redis, its 503
// says so without the dial error (address, port, resolver text), which
// goes to the log only.
func TestBootErrorsDoNotLeak(t *testing.T) {
	t.Parallel()
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("redis://127.0.0.1:%d", port)
	d := daemontest.Start(t, []string{"QUEUE_URL=" + url})
	deadline := time.Now().Add(10 * time.Second)
	// The daemon's own line, written once the first attempt has failed.
	for !strings.Contains(d.Log(), "backend not reachable") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if diff := cmp.Diff(true, strings.Contains(d.Log(), "backend not reachable")); diff != "" {
		t.Errorf("the dial error should be in the log (-want +got):\n%s", diff)
	}
	for _, path := range []string{"/readyz", "/run/AAAAAAAAAAAAAAAAAAAAAA", "/api/dev/whoami"} {
		resp, err := http.Get(d.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Errorf("%s while connecting: %d, want 503", path, resp.StatusCode)
		}
		t.Logf("%s: %d %s", path, resp.StatusCode, b)
		for _, l := range []string{strconv.Itoa(port), "dial tcp", "connection refused"} {
			if strings.Contains(string(b), l) {
				t.Errorf("%s while connecting leaks %q: %s", path, l, b)
			}
		}
	}
}

// sampleRequest is a request that route pattern (of authTable) takes: its
// method, a path with a made-up id and the parameters it needs, and a body
// it accepts.
func sampleRequest(pattern string) (method, path, body string) {
	method, path, _ = strings.Cut(pattern, " ")
	if strings.HasPrefix(pattern, "/") { // a route of any method
		method, path = "GET", pattern
	}
	path = strings.ReplaceAll(path, "{id}", "AAAAAAAAAAAAAAAAAAAAAA")
	path = strings.NewReplacer("{limit}", "api", "{rest...}", "x").Replace(path)
	body = `{"type":"ping"}`
	switch {
	case strings.HasSuffix(path, "rate-limits/config"):
		body = `{"target":"run","capacity":5,"window_seconds":60}`
		if method == "DELETE" {
			path += "?target=run"
		}
	case strings.HasSuffix(path, "/reset"):
		body = `{"key":"run:ip:203.0.113.7"}`
	case path == "/api/public/tenant-meta":
		path += "?tenant=t1"
	}
	return method, path, body
}
