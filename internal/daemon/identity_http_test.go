package daemon

import (
	"testing"

	"github.com/refrakt/refrakt/internal/config"
)

// rlTestKey sends rq to GET /api/dev/rl-test (3 per 60 s, keyed on the
// client address) until it is refused, and returns the bucket key its 429
// names: the client address the daemon chose.
func rlTestKey(t *testing.T, s *Server, rq request) string {
	t.Helper()
	rq.path, rq.token = "/api/dev/rl-test", devToken
	for range 4 {
		resp, body := send(t, s, rq)
		switch resp.StatusCode {
		case 200:
			continue
		case 429:
			e, _ := body["error"].(map[string]any)
			d, _ := e["details"].(map[string]any)
			key, _ := d["key"].(string)
			return key
		default:
			t.Fatalf("rl-test: %d %v", resp.StatusCode, body)
		}
	}
	t.Fatal("rl-test: no 429 after 4 requests")
	return ""
}

// TestForwardedAddressWithPort: a hop written ip:port or [v6]:port (Azure
// Application Gateway, some IIS/ARR set-ups) in X-Forwarded-For or the
// client-IP header is the client's address. It counted as malformed, so
// every client behind such a proxy was keyed on the proxy: one bucket and
// one ban for all of them. What is not an address with a port stays
// malformed: the walk stops there.
func TestForwardedAddressWithPort(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		want    string
	}{
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

// TestForwardedAddressNoClientHas: an address no client sends from
// (unspecified, multicast, the IPv4 broadcast) in X-Forwarded-For or the
// client-IP header is malformed, like garbage: it was believed, and every
// request carrying it shared a bucket (rl-test:ip:0.0.0.0, rl-test:ip:::/64).
func TestForwardedAddressNoClientHas(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		want    string
	}{
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
