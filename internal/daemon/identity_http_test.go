package daemon

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/config"
)

// limitedKey sends rq until a 429 (at most n times, each earlier answer a
// 2xx) and returns the bucket key the 429 names.
func limitedKey(t *testing.T, s *Server, rq request, n int) string {
	t.Helper()
	for range n {
		resp, body := send(t, s, rq)
		if resp.StatusCode == 429 {
			e, _ := body["error"].(map[string]any)
			d, _ := e["details"].(map[string]any)
			key, _ := d["key"].(string)
			return key
		}
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %d %v", rq.method, rq.path, resp.StatusCode, body)
		}
	}
	t.Fatalf("%s %s: no 429 after %d requests", rq.method, rq.path, n)
	return ""
}

// rlTestKey sends rq to GET /api/dev/rl-test (3 per 60 s, keyed on the
// client address) until it is refused, and returns the bucket key its 429
// names: the client address the daemon chose.
func rlTestKey(t *testing.T, s *Server, rq request) string {
	t.Helper()
	rq.path, rq.token = "/api/dev/rl-test", devToken
	return limitedKey(t, s, rq, 4)
}

// TestForwardedAddressWithPort: a hop written ip:port or [v6]:port (Azure
// Application Gateway, some IIS/ARR set-ups) in X-Forwarded-For or the
// client-IP header is the client's address. It counted as malformed, so
// every client behind such a proxy was keyed on the proxy: one bucket and
// one ban for all of them. What is not an address with a port stays
// malformed: the walk stops there.
func TestForwardedAddressWithPort(t *testing.T) {
	tests := []forwardedCase{
		{"X-Forwarded-For ip:port", map[string]string{"X-Forwarded-For": "203.0.113.7:8080"}, "rl-test:ip:203.0.113.7"},
		{"X-Forwarded-For [v6]:port", map[string]string{"X-Forwarded-For": "[2001:db8:7::1]:443"}, "rl-test:ip:2001:db8:7::/64"},
		{"X-Forwarded-For [v4-mapped]:port", map[string]string{"X-Forwarded-For": "[::ffff:203.0.113.8]:443"}, "rl-test:ip:203.0.113.8"},
		{"ip:port behind a trusted hop", map[string]string{"X-Forwarded-For": "198.51.100.66, 203.0.113.9:50123 , 10.1.1.1:80"}, "rl-test:ip:203.0.113.9"},
		{"client-IP header ip:port", map[string]string{"CF-Connecting-IP": "203.0.113.10:1234", "X-Forwarded-For": "198.51.100.1"}, "rl-test:ip:203.0.113.10"},
		{"client-IP header [v6]:port", map[string]string{"CF-Connecting-IP": "[2001:db8:8::5]:80"}, "rl-test:ip:2001:db8:8::/64"},
		{"a bare IPv6 address is not ip:port", map[string]string{"X-Forwarded-For": "2001:db8:9::1:443"}, "rl-test:ip:2001:db8:9::/64"},
		// Still malformed: the walk stops, the trusted peer is the key.
		{"port out of range", map[string]string{"X-Forwarded-For": "203.0.113.7:99999"}, "rl-test:ip:127.0.0.1"},
		{"empty port", map[string]string{"X-Forwarded-For": "203.0.113.7:"}, "rl-test:ip:127.0.0.1"},
		{"bracketed IPv4", map[string]string{"X-Forwarded-For": "[203.0.113.7]:80"}, "rl-test:ip:127.0.0.1"},
		{"unbracketed IPv6 with a port", map[string]string{"X-Forwarded-For": "2001:db8::1]:443"}, "rl-test:ip:127.0.0.1"},
		{"zone", map[string]string{"X-Forwarded-For": "[fe80::1%eth0]:443"}, "rl-test:ip:127.0.0.1"},
		{"name and port", map[string]string{"X-Forwarded-For": "client.example:443"}, "rl-test:ip:127.0.0.1"},
		{"a malformed hop still stops the walk", map[string]string{"X-Forwarded-For": "203.0.113.7:8080, x:1, 10.1.1.1"}, "rl-test:ip:10.1.1.1"},
	}
	checkForwardedKeys(t, tests)
}

// TestForwardedAddressNoClientHas: an address no client sends from
// (unspecified, multicast, the IPv4 broadcast) in X-Forwarded-For or the
// client-IP header is malformed, like garbage: it was believed, and every
// request carrying it shared a bucket (rl-test:ip:0.0.0.0, rl-test:ip:::/64).
func TestForwardedAddressNoClientHas(t *testing.T) {
	tests := []forwardedCase{
		{"0.0.0.0", map[string]string{"X-Forwarded-For": "0.0.0.0"}, "rl-test:ip:127.0.0.1"},
		{"::", map[string]string{"X-Forwarded-For": "::"}, "rl-test:ip:127.0.0.1"},
		{"[::]:port", map[string]string{"X-Forwarded-For": "[::]:443"}, "rl-test:ip:127.0.0.1"},
		{"0.0.0.0:port", map[string]string{"X-Forwarded-For": "0.0.0.0:443"}, "rl-test:ip:127.0.0.1"},
		{"v4-mapped unspecified", map[string]string{"X-Forwarded-For": "::ffff:0.0.0.0"}, "rl-test:ip:127.0.0.1"},
		{"IPv4 multicast", map[string]string{"X-Forwarded-For": "224.0.0.1"}, "rl-test:ip:127.0.0.1"},
		{"IPv6 multicast", map[string]string{"X-Forwarded-For": "ff02::1"}, "rl-test:ip:127.0.0.1"},
		{"broadcast", map[string]string{"X-Forwarded-For": "255.255.255.255"}, "rl-test:ip:127.0.0.1"},
		{"the walk stops at it", map[string]string{"X-Forwarded-For": "198.51.100.9, 0.0.0.0, 10.1.1.1"}, "rl-test:ip:10.1.1.1"},
		{"client-IP header falls back to X-Forwarded-For", map[string]string{"CF-Connecting-IP": "0.0.0.0", "X-Forwarded-For": "198.51.100.9"}, "rl-test:ip:198.51.100.9"},
		{"client-IP header ::", map[string]string{"CF-Connecting-IP": "::"}, "rl-test:ip:127.0.0.1"},
	}
	checkForwardedKeys(t, tests)
}

// forwardedCase is a request's headers from a trusted proxy (the loopback
// peer; 10.0.0.0/8 trusted too) and the rl-test key they must give.
type forwardedCase struct {
	name    string
	headers map[string]string
	want    string
}

// checkForwardedKeys runs each case through rl-test on a limit server of
// its own.
func checkForwardedKeys(t *testing.T, tests []forwardedCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newLimitServer(t, func(c *config.Config) {
				c.TrustedProxies = append(c.TrustedProxies, netipMust("10.0.0.0/8"))
			})
			if got := rlTestKey(t, s, request{peer: "127.0.0.1:4711", headers: tt.headers}); got != tt.want {
				t.Errorf("key %q, want %q", got, tt.want)
			}
		})
	}
}

// identityServer is a limit server whose secure-ping and run buckets hold
// one token, so a request's second go names its bucket in the 429.
func identityServer(t *testing.T) *Server {
	t.Helper()
	s, _ := newLimitServer(t, func(c *config.Config) { c.RunBurst = 1 })
	if resp, body := do(t, s, "POST", "/api/dev/rate-limits/config", devToken, `{"target":"secure-ping","capacity":1,"window_seconds":60}`); resp.StatusCode/100 != 2 {
		t.Fatalf("override: %d %v", resp.StatusCode, body)
	}
	return s
}

// TestAmbiguousIdentityRefused: from a trusted proxy (or with the developer
// token), an identity that two sources give differently is a 400 naming
// them, never resolved for one of them, since one is the client's: an
// identity header or the client-IP header given twice (a proxy that added
// its value after the client's, which was taken), X-User-ID and X-UserID
// that differ (the client's X-User-ID was taken over the proxy's
// X-UserID), and a query parameter the identity headers do not carry (the
// client's ?user_id= taken beside the proxy's X-Tenant-ID).
//
// What passes, keyed as before: the same user in X-User-ID and X-UserID, a
// query that repeats the headers, an identity all in the query, repeated
// X-Forwarded-For lines (a list by definition), repeated headers from a
// peer whose identity headers are ignored anyway, and, on a route whose
// limit keys on the address alone, the user and tenant headers, which it
// does not read (tenant-meta's ?tenant= is the tenant it describes).
func TestAmbiguousIdentityRefused(t *testing.T) {
	const proxy = "127.0.0.1:4711"
	ping := func(h http.Header) request {
		return request{path: "/api/secure/ping", peer: proxy, header: h}
	}
	run := func(path string, h http.Header) request {
		return request{method: "POST", path: path, body: `{"type":"ping"}`, peer: proxy, header: h}
	}
	const (
		twice     = " is given more than once: a trusted proxy must set it, replacing any the client sent, not add another"
		notUser   = "query parameter user_id is not the identity headers' (X-User-ID or X-UserID): in a request with identity headers the query may only repeat them"
		notTenant = "query parameter tenant is not the identity headers' (X-Tenant-ID): in a request with identity headers the query may only repeat them"
	)
	repeated := http.Header{"X-User-Id": {"a", "b"}, "X-Userid": {"c", "d"}, "X-Tenant-Id": {"e", "f"},
		"X-Ratelimit-Tier": {"premium", "premium"}, "Cf-Connecting-Ip": {"198.51.100.1", "198.51.100.2"}}
	tests := []struct {
		name    string
		rq      request
		message string // the 400's message; "" for a request that passes
		n       int    // else the requests to a 429 (secure-ping and run hold one token)
		key     string // and the key it names
	}{
		{name: "X-User-ID twice", rq: ping(http.Header{"X-User-Id": {"victim", "u1"}, "X-Tenant-Id": {"t1"}}), message: "header X-User-ID" + twice},
		{name: "X-User-ID twice, the first empty", rq: ping(http.Header{"X-User-Id": {"", "u1"}, "X-Tenant-Id": {"t1"}}), message: "header X-User-ID" + twice},
		{name: "X-UserID twice", rq: ping(http.Header{"X-Userid": {"victim", "u1"}, "X-Tenant-Id": {"t1"}}), message: "header X-UserID" + twice},
		{name: "X-Tenant-ID twice", rq: ping(http.Header{"X-User-Id": {"u1"}, "X-Tenant-Id": {"other", "t1"}}), message: "header X-Tenant-ID" + twice},
		{name: "X-RateLimit-Tier twice", rq: run("/run", http.Header{"X-Ratelimit-Tier": {"premium", "standard"}}), message: "header X-RateLimit-Tier" + twice},
		{name: "X-RateLimit-Tier twice, on a route keyed by address",
			rq:      request{path: "/api/public/tenant-meta?tenant=t1", peer: proxy, header: http.Header{"X-Ratelimit-Tier": {"premium", "standard"}}},
			message: "header X-RateLimit-Tier" + twice},
		{name: "client-IP header twice",
			rq:      request{path: "/api/dev/rl-test", token: devToken, peer: proxy, header: http.Header{"Cf-Connecting-Ip": {"198.51.100.1", "203.0.113.7"}}},
			message: "header CF-Connecting-IP" + twice},
		{name: "X-User-ID and X-UserID differ", rq: ping(http.Header{"X-User-Id": {"victim"}, "X-Userid": {"u1"}, "X-Tenant-Id": {"t1"}}),
			message: "headers X-User-ID and X-UserID name different users: a trusted proxy must set one and remove the other"},
		{name: "X-User-ID and ?user_id= differ", rq: run("/run?user_id=victim", http.Header{"X-User-Id": {"u1"}}), message: notUser},
		{name: "?user_id= beside X-Tenant-ID alone",
			rq: request{path: "/api/secure/ping?user_id=victim", peer: proxy, header: http.Header{"X-Tenant-Id": {"t1"}}}, message: notUser},
		{name: "?tenant= beside X-User-ID alone",
			rq: request{path: "/api/secure/ping?tenant=other", peer: proxy, header: http.Header{"X-User-Id": {"u1"}}}, message: notTenant},
		{name: "X-Tenant-ID and ?tenant= differ",
			rq:      request{path: "/api/secure/ping?user_id=u1&tenant=other", peer: proxy, header: http.Header{"X-User-Id": {"u1"}, "X-Tenant-Id": {"t1"}}},
			message: notTenant},
		{name: "X-User-ID twice, with the developer token",
			rq:      request{method: "POST", path: "/assistant", body: `{"type":"ping"}`, token: devToken, peer: "203.0.113.9:5000", header: http.Header{"X-User-Id": {"victim", "u1"}}},
			message: "header X-User-ID" + twice},
		// What passes.
		{name: "X-User-ID and X-UserID agree", rq: ping(http.Header{"X-User-Id": {"u1"}, "X-Userid": {" u1 "}, "X-Tenant-Id": {"t1"}}),
			n: 2, key: "secure-ping:user_tenant:u1:t1"},
		{name: "the query repeats the headers",
			rq: request{path: "/api/secure/ping?user_id=u1&tenant=t1", peer: proxy, header: http.Header{"X-Userid": {"u1"}, "X-Tenant-Id": {"t1"}}},
			n:  2, key: "secure-ping:user_tenant:u1:t1"},
		{name: "the query repeats one header",
			rq: request{path: "/api/secure/ping?tenant=t1", peer: proxy, header: http.Header{"X-User-Id": {"u1"}, "X-Tenant-Id": {"t1"}}},
			n:  2, key: "secure-ping:user_tenant:u1:t1"},
		{name: "identity all in the query", rq: request{path: "/api/secure/ping?user_id=u2&tenant=t2", peer: proxy}, n: 2, key: "secure-ping:user_tenant:u2:t2"},
		{name: "X-Forwarded-For lines", rq: run("/run", http.Header{"X-Forwarded-For": {"198.51.100.9", "203.0.113.7"}}), n: 2, key: "run:ip:203.0.113.7"},
		{name: "repeated headers from an untrusted peer",
			rq: request{method: "POST", path: "/run?user_id=x", body: `{"type":"ping"}`, peer: "203.0.113.9:5000", header: repeated},
			n:  2, key: "run:ip:203.0.113.9"},
		{name: "user and tenant headers on a route keyed by address",
			rq: request{path: "/api/dev/rl-test?user_id=x&tenant=y", token: devToken, peer: proxy,
				header: http.Header{"X-User-Id": {"a", "b"}, "X-Userid": {"c"}, "X-Tenant-Id": {"e", "f"}}},
			n: 4, key: "rl-test:ip:127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := identityServer(t)
			if tt.message == "" {
				if got := limitedKey(t, s, tt.rq, tt.n); got != tt.key {
					t.Errorf("key %q, want %q", got, tt.key)
				}
				return
			}
			resp, body := send(t, s, tt.rq)
			want := map[string]any{"error": map[string]any{"code": "invalid", "message": tt.message}}
			if diff := cmp.Diff(want, body); diff != "" || resp.StatusCode != 400 {
				t.Errorf("status %d, want 400; body (-want +got):\n%s", resp.StatusCode, diff)
			}
		})
	}
	t.Run("tenant-meta describes its query's tenant", func(t *testing.T) {
		s := identityServer(t)
		resp, body := send(t, s, request{path: "/api/public/tenant-meta?tenant=other", peer: proxy,
			header: http.Header{"X-User-Id": {"u1"}, "X-Tenant-Id": {"t1", "t2"}}})
		if resp.StatusCode != 200 || body["tenant"] != "other" {
			t.Errorf("tenant-meta: %d %v, want 200 for tenant other", resp.StatusCode, body)
		}
	})
}
