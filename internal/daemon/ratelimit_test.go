package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/fakeclock"
	"github.com/refrakt/refrakt/internal/redistest"
)

// newLimitServer is a server on the memory backend with a fake clock.
func newLimitServer(t *testing.T, mutate ...func(*config.Config)) (*Server, *fakeclock.Clock) {
	t.Helper()
	clock := fakeclock.New(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	s, err := NewServer(Deps{Config: testConfig(mutate...), Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s, clock
}

// request is one request to send: from peer, with headers.
type request struct {
	method, path, token, body, peer string
	headers                         map[string]string
	// header is added after headers, each value a field line of its own:
	// a header given more than once.
	header http.Header
}

func send(t *testing.T, h http.Handler, rq request) (*http.Response, map[string]any) {
	t.Helper()
	if rq.method == "" {
		rq.method = "GET"
	}
	var body *strings.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	var req *http.Request
	if body != nil {
		req = httptest.NewRequest(rq.method, rq.path, body)
	} else {
		req = httptest.NewRequest(rq.method, rq.path, nil)
	}
	if rq.peer != "" {
		req.RemoteAddr = rq.peer
	}
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	for k, v := range rq.headers {
		req.Header.Set(k, v)
	}
	for k, vs := range rq.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Result(), out
}

// limitHeaders picks the rate-limit headers of a response.
type limitHeaders struct {
	Status                                         int
	Limit, Remaining, Reset, Policy, RateLimit, RA string
}

func headersOf(r *http.Response) limitHeaders {
	return limitHeaders{
		Status: r.StatusCode, Limit: r.Header.Get("RateLimit-Limit"), Remaining: r.Header.Get("RateLimit-Remaining"),
		Reset: r.Header.Get("RateLimit-Reset"), Policy: r.Header.Get("RateLimit-Policy"), RateLimit: r.Header.Get("RateLimit"),
		RA: r.Header.Get("Retry-After"),
	}
}

func TestRLTestHeaders429AndBan(t *testing.T) {
	s, clock := newLimitServer(t)
	rq := request{path: "/api/dev/rl-test", token: devToken, peer: "192.0.2.1:1234"}
	var got []limitHeaders
	var last map[string]any
	for range 8 {
		resp, body := send(t, s, rq)
		got = append(got, headersOf(resp))
		last = body
		if resp.StatusCode == http.StatusTooManyRequests && len(got) == 4 {
			want := map[string]any{"error": map[string]any{"code": "limited",
				"message": `rate limit "rl-test" exceeded for scope ip; retry in 60s`,
				"details": map[string]any{"limit": "rl-test", "scope": "ip", "key": "rl-test:ip:192.0.2.1", "retry_after_seconds": 60.0}}}
			if diff := cmp.Diff(want, body); diff != "" {
				t.Errorf("first 429 body (-want +got):\n%s", diff)
			}
		}
	}
	p := `"rl-test:ip";q=3;w=60`
	want := []limitHeaders{
		{200, "3", "2", "20", p, `"rl-test:ip";r=2;t=20`, ""},
		{200, "3", "1", "40", p, `"rl-test:ip";r=1;t=40`, ""},
		{200, "3", "0", "60", p, `"rl-test:ip";r=0;t=60`, ""},
		{429, "3", "0", "60", p, `"rl-test:ip";r=0;t=60`, "60"},
		// Each 429 is a strike: capacity 3 × 0.5^strikes, at least 1. The
		// policy (its quota, 3 per 60s) stays what it is.
		{429, "1", "0", "60", p, `"rl-test:ip";r=0;t=60`, "60"},
		{429, "1", "0", "60", p, `"rl-test:ip";r=0;t=60`, "60"},
		{429, "1", "0", "60", p, `"rl-test:ip";r=0;t=60`, "60"},
		// The fifth strike bans for BAN_SECONDS.
		{429, "1", "0", "60", p, `"rl-test:ip";r=0;t=60`, "60"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("responses (-want +got):\n%s", diff)
	}
	until := clock.Now().Add(60 * time.Second).Format(time.RFC3339)
	wantBan := map[string]any{"error": map[string]any{"code": "limited",
		"message": `banned by rate limit "rl-test" (scope ip) until ` + until,
		"details": map[string]any{"limit": "rl-test", "scope": "ip", "key": "rl-test:ip:192.0.2.1", "retry_after_seconds": 60.0, "banned_until": until}}}
	if diff := cmp.Diff(wantBan, last); diff != "" {
		t.Errorf("ban body (-want +got):\n%s", diff)
	}
	// Another client is not affected; an unauthenticated call spends nothing.
	if resp, _ := send(t, s, request{path: "/api/dev/rl-test", peer: "192.0.2.2:1"}); resp.StatusCode != 401 {
		t.Errorf("without token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := send(t, s, request{path: "/api/dev/rl-test", token: devToken, peer: "192.0.2.2:1"}); resp.Header.Get("RateLimit-Remaining") != "2" {
		t.Errorf("other client: remaining %q, want 2", resp.Header.Get("RateLimit-Remaining"))
	}
}

// TestPolicyQuotaIsTheRate: RateLimit-Policy's q is the policy's quota per
// window w (draft-ietf-httpapi-ratelimit-headers-10): run refills 30 per 60s
// while its burst, RateLimit-Limit, is 10; a premium client's quota is
// three times that. It once said q=10, a third of what a client may send.
func TestPolicyQuotaIsTheRate(t *testing.T) {
	s, _ := newLimitServer(t)
	for _, c := range []struct {
		name          string
		headers       map[string]string
		limit, policy string
	}{
		{"standard", nil, "10", `"run:ip";q=30;w=60`},
		{"premium", map[string]string{"X-RateLimit-Tier": "premium"}, "30", `"run:ip";q=90;w=60`},
	} {
		resp, body := send(t, s, request{method: "POST", path: "/run", body: `{"type":"ping"}`, peer: "127.0.0.1:1", headers: c.headers})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s: POST /run: %d %v", c.name, resp.StatusCode, body)
		}
		if got := [2]string{resp.Header.Get("RateLimit-Limit"), resp.Header.Get("RateLimit-Policy")}; got != [2]string{c.limit, c.policy} {
			t.Errorf("%s: RateLimit-Limit and -Policy %q, want %q", c.name, got, [2]string{c.limit, c.policy})
		}
	}
}

// TestBanRetryAfterCountsDebt: a ban that starts while the bucket owes
// more than the ban lasts says, in Retry-After, when a request passes
// again (banned_until stays the ban's end); a client that sleeps that long
// is let in, not refused and struck into the next ban.
func TestBanRetryAfterCountsDebt(t *testing.T) {
	s, clock := newLimitServer(t, func(c *config.Config) { c.PenaltyDecay = 2 * time.Second; c.BanDuration = 2 * time.Second })
	rq := request{path: "/api/dev/rl-test", token: devToken, peer: "192.0.2.1:1234"} // 3 per 60s
	type answer struct {
		Status            int
		RA, BannedUntil   string
		RetryAfterSeconds any
	}
	ask := func() answer {
		t.Helper()
		resp, body := send(t, s, rq)
		a := answer{Status: resp.StatusCode, RA: resp.Header.Get("Retry-After")}
		if e, ok := body["error"].(map[string]any); ok {
			d := e["details"].(map[string]any)
			a.BannedUntil, _ = d["banned_until"].(string)
			a.RetryAfterSeconds = d["retry_after_seconds"]
		}
		return a
	}
	var got []answer
	for range 8 { // 3 tokens, 4 strikes, the ban
		got = append(got, ask())
	}
	end := clock.Now().Add(2 * time.Second).Format(time.RFC3339)
	clock.Advance(time.Second)
	got = append(got, ask())
	clock.Advance(19 * time.Second)
	got = append(got, ask())
	want := []answer{
		{Status: 200}, {Status: 200}, {Status: 200},
		{429, "60", "", 60.0}, {429, "60", "", 60.0}, {429, "60", "", 60.0}, {429, "60", "", 60.0},
		// 3 tokens of 20s owed: the first passes 20s later.
		{429, "20", end, 20.0},
		{429, "19", end, 19.0},
		{Status: 200},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
}

// TestBanRetryAfterCountsDebtRedis is TestBanRetryAfterCountsDebt on Redis,
// whose daemon answers a banned key from its ban cache, in real time (Redis
// TIME): a ban of 1s, with 3s owed.
func TestBanRetryAfterCountsDebtRedis(t *testing.T) {
	r := redistest.Start(t)
	s, _ := newRedisServer(t, r, func(c *config.Config) { c.BanAfterStrikes = 1; c.BanDuration = time.Second })
	if resp, body := send(t, s, request{method: "POST", path: "/api/dev/rate-limits/config", token: devToken,
		body: `{"target":"rl-test","capacity":1,"window_seconds":3}`}); resp.StatusCode != 200 {
		t.Fatalf("set override: %d %v", resp.StatusCode, body)
	}
	rq := request{path: "/api/dev/rl-test", token: devToken, peer: "192.0.2.1:1234"}
	if resp, body := send(t, s, rq); resp.StatusCode != 200 {
		t.Fatalf("first request: %d %v", resp.StatusCode, body)
	}
	var retry int
	for _, what := range []string{"the ban", "the cached ban"} {
		resp, body := send(t, s, rq)
		if resp.StatusCode != 429 || body["error"].(map[string]any)["details"].(map[string]any)["banned_until"] == nil {
			t.Fatalf("%s: %d %v, want a ban", what, resp.StatusCode, body)
		}
		// The token taken owes 3s, less the moments the requests took:
		// more than the ban's 1s.
		ra := resp.Header.Get("Retry-After")
		if n, err := strconv.Atoi(ra); err != nil || n < 2 {
			t.Fatalf("%s: Retry-After %q, want the 3s owed (2 or 3)", what, ra)
		} else {
			retry = n
		}
	}
	time.Sleep(time.Duration(retry) * time.Second)
	if resp, body := send(t, s, rq); resp.StatusCode != 200 {
		t.Errorf("back after Retry-After (%ds): %d %v, want 200", retry, resp.StatusCode, body)
	}
}

func TestRateLimitDisabled(t *testing.T) {
	s, _ := newLimitServer(t, func(c *config.Config) { c.RateLimitEnabled = false })
	for i := range 10 {
		resp, _ := send(t, s, request{path: "/api/dev/rl-test", token: devToken})
		if resp.StatusCode != 200 || resp.Header.Get("RateLimit-Limit") != "" {
			t.Fatalf("request %d: status %d, RateLimit-Limit %q; want 200 without headers", i, resp.StatusCode, resp.Header.Get("RateLimit-Limit"))
		}
	}
}

func TestTrustedProxiesOverHTTP(t *testing.T) {
	s, _ := newLimitServer(t, func(c *config.Config) {
		c.TrustedProxies = append(c.TrustedProxies, netipMust("10.0.0.0/8"))
	})
	for _, rq := range []request{
		{peer: "203.0.113.9:1", headers: map[string]string{"CF-Connecting-IP": "198.51.100.200", "X-Forwarded-For": "198.51.100.201"}},
		{peer: "127.0.0.1:1", headers: map[string]string{"CF-Connecting-IP": "198.51.100.1"}},
		{peer: "127.0.0.1:1", headers: map[string]string{"X-Forwarded-For": "198.51.100.66, 192.0.2.7, 10.1.1.1"}},
		{peer: "127.0.0.1:1", headers: map[string]string{"CF-Connecting-IP": "garbage", "X-Forwarded-For": "garbage"}},
	} {
		rq.path = "/api/public/tenant-meta?tenant=t1"
		if resp, body := send(t, s, rq); resp.StatusCode != 200 {
			t.Fatalf("%+v: %d %v", rq, resp.StatusCode, body)
		}
	}
	_, body := send(t, s, request{path: "/api/obs/rate-limits", token: opToken})
	var keys []string
	for _, b := range body["buckets"].([]any) {
		keys = append(keys, b.(map[string]any)["key"].(string))
	}
	sort.Strings(keys)
	want := []string{"tenant-meta:ip:127.0.0.1", "tenant-meta:ip:192.0.2.7", "tenant-meta:ip:198.51.100.1", "tenant-meta:ip:203.0.113.9"}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("bucket keys (-want +got):\n%s", diff)
	}
}

func TestSecurePing(t *testing.T) {
	s, _ := newLimitServer(t)
	ids := map[string]string{"X-User-ID": "u1", "X-Tenant-ID": "t1"}
	tests := []struct {
		name string
		rq   request
		want int
	}{
		{"no user or tenant", request{peer: "127.0.0.1:1"}, 400},
		{"only a user", request{peer: "127.0.0.1:1", headers: map[string]string{"X-User-ID": "u1"}}, 400},
		{"headers from an untrusted peer", request{peer: "203.0.113.9:1", headers: ids}, 400},
		{"headers from a trusted peer", request{peer: "127.0.0.1:1", headers: ids}, 200},
		{"headers with the developer token", request{peer: "203.0.113.9:1", headers: ids, token: devToken}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.rq.path = "/api/secure/ping"
			resp, body := send(t, s, tt.rq)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d (%v), want %d", resp.StatusCode, body, tt.want)
			}
			if tt.want == 200 && resp.Header.Get("RateLimit-Policy") != `"secure-ping:user_tenant";q=30;w=60` {
				t.Errorf("RateLimit-Policy %q", resp.Header.Get("RateLimit-Policy"))
			}
		})
	}
}

func TestTenantMeta(t *testing.T) {
	s, _ := newLimitServer(t)
	if resp, _ := send(t, s, request{path: "/api/public/tenant-meta"}); resp.StatusCode != 400 {
		t.Errorf("without tenant: %d, want 400", resp.StatusCode)
	}
	if resp, body := send(t, s, request{method: "POST", path: "/api/dev/rate-limits/config", token: devToken,
		body: `{"target":"run","capacity":100,"window_seconds":60}`}); resp.StatusCode != 200 {
		t.Fatalf("set override: %d %v", resp.StatusCode, body)
	}
	resp, body := send(t, s, request{path: "/api/public/tenant-meta?tenant=t1"})
	if resp.StatusCode != 200 {
		t.Fatalf("tenant-meta: %d %v", resp.StatusCode, body)
	}
	type lim struct {
		Name                 string
		Burst, Rate, Premium float64
		Override             bool
	}
	var got []lim
	for _, l := range body["limits"].([]any) {
		m := l.(map[string]any)
		got = append(got, lim{m["name"].(string), m["burst"].(float64), m["rate"].(float64), m["premium_burst"].(float64), m["override"] != nil})
	}
	// An override replaces the premium multiplier too (README): premium
	// requests get its capacity, as the response must say (it said 30).
	want := []lim{
		{"run", 100, 100, 100, true},
		{"assistant", 20, 20, 60, false},
		{"tenant-meta", 60, 60, 180, false},
		{"rl-test", 3, 3, 9, false},
		{"secure-ping", 30, 30, 90, false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("limits (-want +got):\n%s", diff)
	}
	// An override of one of the limit's scopes applies to every request of
	// the tenant too.
	if resp, body := send(t, s, request{method: "POST", path: "/api/dev/rate-limits/config", token: devToken,
		body: `{"target":"assistant:ip","capacity":7,"window_seconds":60}`}); resp.StatusCode != 200 {
		t.Fatalf("set override: %d %v", resp.StatusCode, body)
	}
	_, body = send(t, s, request{path: "/api/public/tenant-meta?tenant=t2"})
	for _, l := range body["limits"].([]any) {
		if m := l.(map[string]any); m["name"] == "assistant" && (m["burst"] != 7.0 || m["premium_burst"] != 7.0 || m["override"] == nil) {
			t.Errorf("assistant under an assistant:ip override: %v, want burst and premium burst 7 with the override", m)
		}
	}
	premium, _ := send(t, s, request{method: "POST", path: "/run", body: `{"type":"ping"}`, peer: "127.0.0.1:1",
		headers: map[string]string{"X-Forwarded-For": "198.51.100.77", "X-RateLimit-Tier": "premium"}})
	if got := premium.Header.Get("RateLimit-Limit"); got != "100" {
		t.Errorf("a premium request under the override: RateLimit-Limit %q, want 100, as tenant-meta says", got)
	}
}

// TestLimitsConfigRefusesHugeNumbers: numbers past the bounds of a bucket
// (or past a Duration's range) are refused with 400 naming the field, and
// the limited route keeps answering. A capacity near the int64 maximum
// once made the memory store panic and then hang that key for good.
func TestLimitsConfigRefusesHugeNumbers(t *testing.T) {
	s, _ := newLimitServer(t)
	for _, c := range []struct{ body, field string }{
		{`{"target":"tenant-meta:ip:10.0.0.15","capacity":9223372036854775807,"window_seconds":60}`, "capacity"},
		{`{"target":"tenant-meta","capacity":1073741825,"window_seconds":1}`, "capacity"},
		{`{"target":"tenant-meta","capacity":5,"window_seconds":31536001}`, "window_seconds"},
		{`{"target":"tenant-meta","capacity":5,"window_seconds":9223372036854775807}`, "window_seconds"},
		{`{"target":"tenant-meta","capacity":5,"window_seconds":60,"ttl_seconds":9223372036854775807}`, "ttl_seconds"},
		{`{"target":"tenant-meta","capacity":5,"window_seconds":60,"ttl_seconds":1e30}`, "ttl_seconds"},
	} {
		resp, body := send(t, s, request{method: "POST", path: "/api/dev/rate-limits/config", token: devToken, body: c.body})
		msg, _ := body["error"].(map[string]any)["message"].(string)
		if resp.StatusCode != 400 || errCode(body) != "invalid" || !strings.Contains(msg, c.field) {
			t.Errorf("POST %s: %d %v, want 400 invalid naming %s", c.body, resp.StatusCode, body, c.field)
		}
	}
	resp, body := send(t, s, request{path: "/api/public/tenant-meta?tenant=t", peer: "10.0.0.15:1234"})
	if resp.StatusCode != 200 || resp.Header.Get("RateLimit-Limit") != "60" {
		t.Errorf("tenant-meta after the refusals: %d %s %v, want 200 under the limit's own policy (60)", resp.StatusCode, resp.Header.Get("RateLimit-Limit"), body)
	}
}

func TestLimitsConfigAPI(t *testing.T) {
	s, clock := newLimitServer(t)
	post := func(body string) (*http.Response, map[string]any) {
		return send(t, s, request{method: "POST", path: "/api/dev/rate-limits/config", token: devToken, body: body})
	}
	bad := []string{
		`{"target":"nope","capacity":5,"window_seconds":60}`,
		`{"target":"run:user_tenant","capacity":5,"window_seconds":60}`,
		`{"target":"run:ip:not-an-ip","capacity":5,"window_seconds":60}`,
		`{"target":"run","capacity":0,"window_seconds":60}`,
		`{"target":"run","capacity":-3,"window_seconds":60}`,
		`{"target":"run","capacity":5,"window_seconds":0}`,
		`{"target":"run","capacity":5,"window_seconds":-60}`,
		`{"target":"run","capacity":5,"window_seconds":60,"ttl_seconds":0}`,
		`{"target":"run","capacity":5,"window_seconds":60,"mode":"loud"}`,
		`{"target":"run","capacity":"5","window_seconds":60}`,
		`{"target":"run","capacity":5,"window_seconds":60,"extra":1}`,
	}
	for _, b := range bad {
		if resp, body := post(b); resp.StatusCode != 400 || errCode(body) != "invalid" {
			t.Errorf("POST %s: %d %v, want 400 invalid", b, resp.StatusCode, body)
		}
	}
	resp, body := post(`{"target":"rl-test:ip:192.0.2.1","capacity":5,"window_seconds":30,"ttl_seconds":120,"mode":"shadow"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("POST: %d %v", resp.StatusCode, body)
	}
	now := clock.Now()
	wantO := map[string]any{"target": "rl-test:ip:192.0.2.1", "capacity": 5.0, "window_seconds": 30.0, "mode": "shadow", "origin": "api",
		"created_at": now.Format(time.RFC3339), "expires_at": now.Add(2 * time.Minute).Format(time.RFC3339)}
	if diff := cmp.Diff(wantO, body); diff != "" {
		t.Errorf("POST answer (-want +got):\n%s", diff)
	}
	_, body = send(t, s, request{path: "/api/dev/rate-limits/config", token: devToken})
	if diff := cmp.Diff([]any{wantO}, body["overrides"]); diff != "" {
		t.Errorf("GET overrides (-want +got):\n%s", diff)
	}
	if n := len(body["limits"].([]any)); n != 5 {
		t.Errorf("GET limits: %d, want 5", n)
	}
	for _, c := range []struct {
		query string
		want  int
	}{
		{"", 400}, {"?target=nope", 400}, {"?target=run", 404},
		{"?target=rl-test:ip:192.0.2.1", 200}, {"?target=rl-test:ip:192.0.2.1", 404},
	} {
		if resp, body := send(t, s, request{method: "DELETE", path: "/api/dev/rate-limits/config" + c.query, token: devToken}); resp.StatusCode != c.want {
			t.Errorf("DELETE %s: %d %v, want %d", c.query, resp.StatusCode, body, c.want)
		}
	}
	if resp, _ := send(t, s, request{path: "/api/dev/rate-limits/config", token: opToken}); resp.StatusCode != 403 {
		t.Errorf("operator GET config: %d, want 403", resp.StatusCode)
	}
}

func TestLimitsReset(t *testing.T) {
	s, _ := newLimitServer(t)
	rq := request{path: "/api/dev/rl-test", token: devToken, peer: "192.0.2.1:1234"}
	for range 4 {
		send(t, s, rq)
	}
	if resp, _ := send(t, s, rq); resp.StatusCode != 429 {
		t.Fatalf("before reset: %d, want 429", resp.StatusCode)
	}
	for _, c := range []struct {
		body string
		want int
	}{
		{`{"key":"rl-test:ip"}`, 400}, {`{"key":"nope:ip:1.2.3.4"}`, 400}, {`{}`, 400},
		{`{"key":"rl-test:ip:192.0.2.1"}`, 200},
	} {
		if resp, body := send(t, s, request{method: "POST", path: "/api/dev/rate-limits/reset", token: devToken, body: c.body}); resp.StatusCode != c.want {
			t.Errorf("reset %s: %d %v, want %d", c.body, resp.StatusCode, body, c.want)
		}
	}
	if resp, _ := send(t, s, rq); resp.StatusCode != 200 || resp.Header.Get("RateLimit-Remaining") != "2" {
		t.Errorf("after reset: %d remaining %q, want 200 and 2", resp.StatusCode, resp.Header.Get("RateLimit-Remaining"))
	}
}

func TestRateLimitsSnapshotEndpoint(t *testing.T) {
	s, clock := newLimitServer(t)
	for range 4 {
		send(t, s, request{path: "/api/dev/rl-test", token: devToken, peer: "192.0.2.1:1"})
	}
	clock.Advance(time.Second)
	send(t, s, request{path: "/api/dev/rl-test", token: devToken, peer: "192.0.2.2:1"})
	if resp, _ := send(t, s, request{path: "/api/obs/rate-limits"}); resp.StatusCode != 401 {
		t.Errorf("without token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := send(t, s, request{path: "/api/obs/rate-limits?limit=0", token: opToken}); resp.StatusCode != 400 {
		t.Errorf("limit=0: %d, want 400", resp.StatusCode)
	}
	resp, body := send(t, s, request{path: "/api/obs/rate-limits?limit=10", token: opToken})
	if resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}
	now := clock.Now()
	b1 := map[string]any{"key": "rl-test:ip:192.0.2.1", "limit": "rl-test", "scope": "ip", "capacity": 1.0, "remaining": 0.0, "strikes": 1.0, "banned_until": nil,
		"last_seen": now.Add(-time.Second).Format(time.RFC3339)}
	want := map[string]any{
		"enabled": true, "backend": "memory", "degraded": false, "penalized_keys": 1.0, "overrides": []any{},
		"buckets": []any{
			map[string]any{"key": "rl-test:ip:192.0.2.2", "limit": "rl-test", "scope": "ip", "capacity": 3.0, "remaining": 2.0, "strikes": 0.0, "banned_until": nil, "last_seen": now.Format(time.RFC3339)},
			b1,
		},
		"penalties": []any{b1},
	}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("snapshot (-want +got):\n%s", diff)
	}
}

// TestRedisOutageOverHTTP pauses Redis (SIGSTOP) under a daemon and checks
// each RATE_LIMIT_ON_BACKEND_ERROR policy end to end: answers within the
// backend timeout's order, as configured, and back on Redis by itself.
func TestRedisOutageOverHTTP(t *testing.T) {
	for _, c := range []struct {
		policy string
		want   int
	}{{"local", 200}, {"allow", 200}, {"deny", 503}} {
		t.Run(c.policy, func(t *testing.T) {
			srv := redistest.Start(t)
			ctx := context.Background()
			rdb, kind, err := OpenRedis(ctx, srv.URL(), "false")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rdb.Close() })
			cfg := config.Default()
			cfg.DeveloperToken, cfg.OperatorToken = devToken, opToken
			cfg.OnBackendError = c.policy
			s, err := NewServer(Deps{Config: cfg, Backend: &Backend{Kind: kind, Redis: rdb, Prefix: "refrakt:"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Stop(ctx) })
			rq := request{path: "/api/dev/rl-test", token: devToken, peer: "192.0.2.1:1"}
			if resp, _ := send(t, s, rq); resp.StatusCode != 200 {
				t.Fatalf("healthy: %d", resp.StatusCode)
			}
			srv.Pause()
			deadline := time.Now().Add(10 * time.Second)
			for i := range 3 {
				start := time.Now()
				resp, body := send(t, s, rq)
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("request %d took %s during the outage (timeout 100ms)", i, took)
				}
				if resp.StatusCode != c.want {
					t.Errorf("request %d during the outage: %d %v, want %d", i, resp.StatusCode, body, c.want)
				}
				if c.want == 503 && resp.Header.Get("Retry-After") != "1" {
					t.Errorf("503 without Retry-After: 1")
				}
				// Let through unchecked, a request has no bucket figures to
				// report (a full bucket was claimed); decided locally, it has.
				if got, want := resp.Header.Get("RateLimit-Policy") != "", c.policy == "local"; got != want {
					t.Errorf("request %d during the outage: RateLimit-Policy %q, want one: %v", i, resp.Header.Get("RateLimit-Policy"), want)
				}
			}
			srv.Resume()
			for s.limiter.Degraded() {
				if time.Now().After(deadline) {
					t.Fatal("the daemon did not go back to Redis within 10s")
				}
				send(t, s, request{path: "/api/dev/rl-test", token: devToken, peer: "192.0.2.99:1"})
				time.Sleep(20 * time.Millisecond)
			}
			// Decisions are Redis's again (one slow round trip on a loaded
			// machine may still fall back, hence the retries).
			for {
				if resp, _ := send(t, s, request{path: "/api/dev/rl-test", token: devToken, peer: "192.0.2.50:1"}); resp.StatusCode != 200 {
					t.Fatalf("after recovery: %d", resp.StatusCode)
				}
				if n, err := rdb.Exists(ctx, "refrakt:rl:{rl-test:ip:192.0.2.50}").Result(); err == nil && n == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("after recovery the bucket is not in Redis")
				}
			}
		})
	}
}

// TestRunLimitIPAndUser checks the run limit on POST /run: per IP, and per
// user when a trusted proxy names one; a refused request spends no token of
// the scope that would have passed.
func TestRunLimitIPAndUser(t *testing.T) {
	s, _ := newLimitServer(t, func(c *config.Config) { c.RunBurst = 2 })
	post := func(peer, user string) (int, string, string) {
		t.Helper()
		rq := request{method: "POST", path: "/run", peer: peer, body: `{"type":"ping"}`}
		if user != "" {
			rq.headers = map[string]string{"X-User-ID": user}
		}
		resp, body := send(t, s, rq)
		scope := ""
		if e, ok := body["error"].(map[string]any); ok {
			scope, _ = e["details"].(map[string]any)["scope"].(string)
		}
		return resp.StatusCode, resp.Header.Get("RateLimit-Remaining"), scope
	}
	type res struct {
		Status           int
		Remaining, Scope string
	}
	var got []res
	for _, c := range []struct{ peer, user string }{
		{"127.0.0.1:1", "u1"}, {"127.0.0.1:1", "u1"},
		{"127.0.0.2:1", "u1"}, // u1 is out of tokens; 127.0.0.2 keeps its own
		{"127.0.0.2:1", ""}, {"127.0.0.2:1", ""}, {"127.0.0.2:1", ""},
	} {
		st, rem, sc := post(c.peer, c.user)
		got = append(got, res{st, rem, sc})
	}
	want := []res{
		{202, "1", ""}, {202, "0", ""},
		{429, "0", "user"},
		{202, "1", ""}, {202, "0", ""}, {429, "0", "ip"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("POST /run (-want +got):\n%s", diff)
	}
}

// TestBanEndRoundsUp: the banned_until a 429 states, in whole seconds, is
// never before the ban's end (it was truncated: a client that slept until
// it was refused again).
func TestBanEndRoundsUp(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"2026-11-26T02:51:27.016Z", "2026-11-26T02:51:28Z"},
		{"2026-11-26T02:51:27.999999Z", "2026-11-26T02:51:28Z"},
		{"2026-11-26T02:51:27Z", "2026-11-26T02:51:27Z"},
		{"2026-11-26T03:51:27.5+01:00", "2026-11-26T02:51:28Z"},
	} {
		in, err := time.Parse(time.RFC3339Nano, tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := ceilSecond(in).Format(time.RFC3339); got != tt.want {
			t.Errorf("ceilSecond(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestLongIdentityRefused: a user id past the limiter's 200 bytes, from a
// trusted proxy, gets 400 naming the bound; the user scope was skipped, so
// such requests passed limited by address alone.
func TestLongIdentityRefused(t *testing.T) {
	s := newTestServer(t)
	long := strings.Repeat("u", 201)
	for i := range 3 {
		resp, body := send(t, s, request{method: "POST", path: "/run", body: `{"type":"ping"}`, peer: "127.0.0.1:1",
			headers: map[string]string{"X-User-ID": long, "X-Forwarded-For": fmt.Sprintf("198.51.101.%d", i)}})
		if resp.StatusCode != 400 || errCode(body) == "" || !strings.Contains(fmt.Sprint(body), "200 bytes") {
			t.Fatalf("request %d: %d %v, want 400 naming the bound", i, resp.StatusCode, body)
		}
	}
}
