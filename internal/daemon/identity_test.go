package daemon

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/config"
)

func TestIdentify(t *testing.T) {
	rules := newIdentityRules(
		[]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.0/8")},
		"CF-Connecting-IP")
	tests := []struct {
		name    string
		peer    string
		headers map[string][]string
		query   string
		grant   bool
		want    Identity
	}{
		{"plain peer", "203.0.113.9:4711", nil, "", false, Identity{IP: "203.0.113.9"}},
		{"spoofed CF-Connecting-IP from an untrusted peer", "203.0.113.9:4711",
			map[string][]string{"Cf-Connecting-Ip": {"198.51.100.1"}}, "", false, Identity{IP: "203.0.113.9"}},
		{"spoofed X-Forwarded-For from an untrusted peer", "203.0.113.9:4711",
			map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "", false, Identity{IP: "203.0.113.9"}},
		{"identity headers from an untrusted peer", "203.0.113.9:4711",
			map[string][]string{"X-User-Id": {"u1"}, "X-Tenant-Id": {"t1"}, "X-Ratelimit-Tier": {"premium"}}, "user_id=u2&tenant=t2", false, Identity{IP: "203.0.113.9"}},
		{"CF-Connecting-IP from a trusted peer", "127.0.0.1:4711",
			map[string][]string{"Cf-Connecting-Ip": {"198.51.100.1"}, "X-Forwarded-For": {"192.0.2.7"}}, "", false, Identity{IP: "198.51.100.1"}},
		{"malformed CF-Connecting-IP falls back to X-Forwarded-For", "127.0.0.1:4711",
			map[string][]string{"Cf-Connecting-Ip": {"not-an-ip"}, "X-Forwarded-For": {"192.0.2.7"}}, "", false, Identity{IP: "192.0.2.7"}},
		{"a chain of proxies: the right-most untrusted address", "127.0.0.1:4711",
			map[string][]string{"X-Forwarded-For": {"198.51.100.66, 192.0.2.7, 10.1.1.1", "10.2.2.2"}}, "", false, Identity{IP: "192.0.2.7"}},
		{"a malformed hop stops the walk", "127.0.0.1:4711",
			map[string][]string{"X-Forwarded-For": {"192.0.2.7, bogus, 10.1.1.1"}}, "", false, Identity{IP: "10.1.1.1"}},
		{"only trusted hops: the left-most", "127.0.0.1:4711",
			map[string][]string{"X-Forwarded-For": {"10.3.3.3, 10.1.1.1"}}, "", false, Identity{IP: "10.3.3.3"}},
		{"malformed X-Forwarded-For alone: the peer", "127.0.0.1:4711",
			map[string][]string{"X-Forwarded-For": {"999.1.1.1"}}, "", false, Identity{IP: "127.0.0.1"}},
		{"identity headers from a trusted peer", "[::1]:4711",
			map[string][]string{"X-Userid": {"u1"}, "X-Tenant-Id": {"t1"}, "X-Ratelimit-Tier": {"Premium"}}, "", false, Identity{IP: "::1", User: "u1", Tenant: "t1", Premium: true}},
		{"identity query parameters from a trusted peer", "127.0.0.1:4711", nil, "user_id=u2&tenant=t2", false,
			Identity{IP: "127.0.0.1", User: "u2", Tenant: "t2"}},
		{"identity headers granted by a token", "203.0.113.9:4711",
			map[string][]string{"X-User-Id": {"u1"}, "X-Tenant-Id": {"t1"}}, "", true, Identity{IP: "203.0.113.9", User: "u1", Tenant: "t1"}},
		{"IPv4-mapped peer", "[::ffff:203.0.113.9]:4711", nil, "", false, Identity{IP: "203.0.113.9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/secure/ping?"+tt.query, nil)
			r.RemoteAddr = tt.peer
			for k, vs := range tt.headers {
				r.Header[k] = vs
			}
			if diff := cmp.Diff(tt.want, rules.identify(r, tt.grant)); diff != "" {
				t.Errorf("identify (-want +got):\n%s", diff)
			}
		})
	}
}

func netipMust(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// identify is resolve with a fixed answer to "does a token grant the identity
// headers", as the tests and fuzz targets pose it, for requests resolve
// does not refuse (a query that does not parse, an ambiguous identity).
func (ir *identityRules) identify(r *http.Request, grantHeaders bool) Identity {
	id, err := ir.resolve(r, func() bool { return grantHeaders }, true)
	if err != nil {
		panic(fmt.Sprintf("resolve %s: %v", r.URL, err))
	}
	return id
}

// The header names the hot paths look up with headerValue, or set
// directly, must be in http.Header's canonical form, or a lookup misses.
func TestHeaderNamesCanonical(t *testing.T) {
	for _, k := range []string{hdrUserID, hdrUserIDAlt, hdrTenantID, hdrTier, hdrForwarded, hdrAuth,
		hdrLimit, hdrRemaining, hdrReset, hdrPolicy, hdrRateLimit} {
		if c := http.CanonicalHeaderKey(k); c != k {
			t.Errorf("%q is not canonical: %q", k, c)
		}
	}
}

// TestIdentifyWithoutClientIPHeader: with CLIENT_IP_HEADER=none a trusted
// proxy's X-Forwarded-For names the client, whatever CF-Connecting-IP a
// client sent through a proxy that does not remove it. It goes the
// daemon's way (code28 NIT 7): the setting read by config.Load, the rules
// built from that config as the server builds them; "none" is no header
// name, so a header called None is not read either.
func TestIdentifyWithoutClientIPHeader(t *testing.T) {
	vars := map[string]string{"CLIENT_IP_HEADER": "none", "TRUSTED_PROXIES": "127.0.0.0/8"}
	cfg, err := config.Load(func(k string) string { return vars[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	rules := newIdentityRules(cfg.TrustedProxies, cfg.ClientIPHeader)
	r := httptest.NewRequest("GET", "/run", nil)
	r.RemoteAddr = "127.0.0.1:4711"
	r.Header["Cf-Connecting-Ip"] = []string{"198.51.100.1", "198.51.100.2"}
	r.Header["None"] = []string{"203.0.113.9"}
	r.Header["X-Forwarded-For"] = []string{"192.0.2.7"}
	id, err := rules.resolve(r, func() bool { return false }, false)
	if err != nil || id.IP != "192.0.2.7" {
		t.Errorf("identity %+v, %v; want the X-Forwarded-For address 192.0.2.7", id, err)
	}
}
