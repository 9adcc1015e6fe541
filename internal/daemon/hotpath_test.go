package daemon

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// TestSetLimitHeaders checks the allocation-free header builder against the
// plain formulas it replaces, including a name strconv.Quote must escape.
func TestSetLimitHeaders(t *testing.T) {
	tests := []struct {
		name string
		d    ratelimit.Decision
	}{
		{"allowed", ratelimit.Decision{Allowed: true, Limit: "rl-test", Scope: ratelimit.ScopeIP, Capacity: 3, Remaining: 2, Window: time.Minute, Reset: 20 * time.Second}},
		{"big numbers, sub-second window", ratelimit.Decision{Limit: "run", Scope: ratelimit.ScopeUser, Capacity: 1_000_000_000, Remaining: 999_999_999, Window: time.Millisecond, Reset: 1500 * time.Millisecond}},
		{"zero reset", ratelimit.Decision{Limit: "secure-ping", Scope: ratelimit.ScopeUserTenant, Capacity: 30, Window: time.Minute}},
		{"a name to escape", ratelimit.Decision{Limit: "we\"ird\\é", Scope: ratelimit.ScopeGlobal, Capacity: 1, Remaining: 0, Window: time.Hour, Reset: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.d
			reset := ceilSeconds(d.Reset)
			name := strconv.Quote(d.Limit + ":" + string(d.Scope))
			want := http.Header{}
			want.Set("RateLimit-Limit", strconv.Itoa(d.Capacity))
			want.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
			want.Set("RateLimit-Reset", strconv.FormatInt(reset, 10))
			want.Set("RateLimit-Policy", fmt.Sprintf("%s;q=%d;w=%d", name, d.Capacity, max(1, int64(d.Window/time.Second))))
			want.Set("RateLimit", fmt.Sprintf("%s;r=%d;t=%d", name, d.Remaining, reset))
			got := http.Header{}
			setLimitHeaders(got, &d)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
}

// TestIdentifyAllocations holds the identity middleware to at most one
// allocation (the IP string, when the request's text is not canonical) and
// none for the usual peer and forwarded cases, ports in forwarded
// addresses included.
func TestIdentifyAllocations(t *testing.T) {
	rules := newIdentityRules([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "CF-Connecting-IP")
	tests := []struct {
		name    string
		peer    string
		headers map[string]string
		want    Identity
		allocs  float64
	}{
		{"untrusted peer", "203.0.113.9:4711", nil, Identity{IP: "203.0.113.9"}, 0},
		{"trusted peer, X-Forwarded-For chain", "127.0.0.1:4711", map[string]string{"X-Forwarded-For": "198.51.100.66, 192.0.2.7, 127.0.0.2"}, Identity{IP: "192.0.2.7"}, 0},
		{"trusted peer, client IP header", "127.0.0.1:4711", map[string]string{"Cf-Connecting-Ip": "198.51.100.1"}, Identity{IP: "198.51.100.1"}, 0},
		{"trusted peer, identity headers", "127.0.0.1:4711", map[string]string{"X-User-Id": "u1", "X-Tenant-Id": "t1"}, Identity{IP: "127.0.0.1", User: "u1", Tenant: "t1"}, 0},
		{"non-canonical IPv6 text", "[2001:DB8::1]:4711", nil, Identity{IP: "2001:db8::1"}, 1},
		// A forwarded address written with a port costs what the plain
		// address does: its text is reused without the port.
		{"X-Forwarded-For ip:port", "127.0.0.1:4711", map[string]string{"X-Forwarded-For": "198.51.100.66, 192.0.2.7:8080, 127.0.0.2:80"}, Identity{IP: "192.0.2.7"}, 0},
		{"X-Forwarded-For [v6]:port", "127.0.0.1:4711", map[string]string{"X-Forwarded-For": "[2001:db8::1]:443"}, Identity{IP: "2001:db8::1"}, 0},
		{"client IP header ip:port", "127.0.0.1:4711", map[string]string{"Cf-Connecting-Ip": "198.51.100.1:1234"}, Identity{IP: "198.51.100.1"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/dev/rl-test", nil)
			r.RemoteAddr = tt.peer
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			grant := func() bool { return false }
			if diff := cmp.Diff(tt.want, rules.identify(r, false)); diff != "" {
				t.Errorf("identity (-want +got):\n%s", diff)
			}
			if got := testing.AllocsPerRun(100, func() { rules.resolve(r, grant, true) }); got > tt.allocs {
				t.Errorf("resolve allocates %.0f times per request, want at most %.0f", got, tt.allocs)
			}
		})
	}
}

// TestUnmatchedRoutesAreJSON checks that dispatch's single routing pass still
// answers unknown paths with 404 and known paths with a wrong method with
// 405 and Allow, both in the JSON envelope, and that a 404 a matched handler
// writes itself passes through untouched.
func TestUnmatchedRoutesAreJSON(t *testing.T) {
	s := newTestServer(t)
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantCode           string
		wantAllow          bool
	}{
		{"unknown path", "GET", "/nope", 404, "not_found", false},
		{"wrong method", "DELETE", "/run", 405, "method_not_allowed", true},
		{"a handler's own 404", "GET", "/run/0123456789abcdef0123456789abcdef", 404, "not_found", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, s, tt.method, tt.path, "", "")
			got := struct {
				Status      int
				ContentType string
				Code        string
				Allow       bool
			}{resp.StatusCode, resp.Header.Get("Content-Type"), errCode(body), resp.Header.Get("Allow") != ""}
			want := got
			want.Status, want.ContentType, want.Code, want.Allow = tt.wantStatus, "application/json", tt.wantCode, tt.wantAllow
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s\nbody: %v", diff, body)
			}
		})
	}
}
