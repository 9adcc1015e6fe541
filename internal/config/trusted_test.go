package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTrustedProxiesUnmappedAndZonesRefused (sec28 LOW 10): peers are
// matched unmapped, so an IPv4-mapped entry is taken as its IPv4 address
// or range (prefix length less 96; kept mapped, it never matched and the
// proxy was silently untrusted); a mapped range shorter than /96 and an
// entry with a zone (which no peer ever matched) are refused, naming the
// setting.
func TestTrustedProxiesUnmappedAndZonesRefused(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  []string
	}{
		{"::ffff:127.0.0.2", []string{"127.0.0.2/32"}},
		{"::ffff:127.0.0.0/104", []string{"127.0.0.0/8"}},
		{"::FFFF:10.1.2.3/128, ::ffff:0.0.0.0/96", []string{"10.1.2.3/32", "0.0.0.0/0"}},
		{"::ffff:192.0.2.77/120", []string{"192.0.2.0/24"}},
		{"2001:db8::/32,::1", []string{"2001:db8::/32", "::1/128"}},
	} {
		c, err := Load(env(map[string]string{"TRUSTED_PROXIES": tt.value}), nil)
		if err != nil {
			t.Errorf("TRUSTED_PROXIES=%s: %v", tt.value, err)
			continue
		}
		var got []string
		for _, p := range c.TrustedProxies {
			got = append(got, p.String())
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("TRUSTED_PROXIES=%s (-want +got):\n%s", tt.value, diff)
		}
		if peer := netip.MustParseAddr("127.0.0.2"); tt.value == "::ffff:127.0.0.2" && !c.TrustedProxies[0].Contains(peer) {
			t.Errorf("%v does not contain the peer %v", c.TrustedProxies, peer)
		}
	}
	for _, tt := range []struct{ value, flag, want string }{
		{"fe80::1%eth0", "", `TRUSTED_PROXIES: "fe80::1%eth0" has "fe80::1%eth0", an address with a zone`},
		{"10.0.0.0/8,fe80::%eth0/64", "", `has "fe80::%eth0/64", an address with a zone`},
		{"", "fe80::1%1", `--trusted-proxies: "fe80::1%1" has "fe80::1%1", an address with a zone`},
		{"::ffff:10.0.0.0/95", "", `has "::ffff:10.0.0.0/95", an IPv4-mapped range shorter than /96`},
		{"::ffff:1.2.3.4/64", "", `an IPv4-mapped range shorter than /96`},
	} {
		flags := map[string]string(nil)
		if tt.flag != "" {
			flags = map[string]string{"trusted-proxies": tt.flag}
		}
		_, err := Load(env(map[string]string{"TRUSTED_PROXIES": tt.value}), flags)
		var cerr *Error
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.As(err, &cerr) {
			t.Errorf("TRUSTED_PROXIES=%q --trusted-proxies=%q: %v, want a config error containing %s", tt.value, tt.flag, err, tt.want)
		}
	}
}

// TestCoveringAll: ranges that together cover every IPv4 or every IPv6
// address are found, however they are split; ranges with a gap are not.
func TestCoveringAll(t *testing.T) {
	for _, tt := range []struct {
		ranges string
		want   []string // each family's ranges that cover it, joined
	}{
		{"127.0.0.0/8,::1/128", nil},
		{"0.0.0.0/0", []string{"0.0.0.0/0"}},
		{"::/0", []string{"::/0"}},
		{"0.0.0.0/1,128.0.0.0/1", []string{"0.0.0.0/1,128.0.0.0/1"}},
		{"128.0.0.0/1,10.0.0.0/8,0.0.0.0/1", []string{"128.0.0.0/1,10.0.0.0/8,0.0.0.0/1"}},
		{"0.0.0.0/2,64.0.0.0/2,128.0.0.0/2,192.0.0.0/3,224.0.0.0/3", []string{"0.0.0.0/2,64.0.0.0/2,128.0.0.0/2,192.0.0.0/3,224.0.0.0/3"}},
		{"0.0.0.0/2,64.0.0.0/2,128.0.0.0/2,192.0.0.0/3", nil}, // 224/3 missing
		{"0.0.0.0/1,128.0.0.0/2,192.0.0.0/2,255.255.255.255", []string{"0.0.0.0/1,128.0.0.0/2,192.0.0.0/2,255.255.255.255/32"}},
		{"0.0.0.0/1,128.0.0.0/2,224.0.0.0/3", nil},                                                    // 192/3 missing
		{"1.0.0.0/8,2.0.0.0/7,4.0.0.0/6,8.0.0.0/5,16.0.0.0/4,32.0.0.0/3,64.0.0.0/2,128.0.0.0/1", nil}, // 0/8 missing
		{"::/1,8000::/1", []string{"::/1,8000::/1"}},
		{"::/1,8000::/2,c000::/2,0.0.0.0/1,128.0.0.0/1", []string{"0.0.0.0/1,128.0.0.0/1", "::/1,8000::/2,c000::/2"}},
		{"::/1,8000::/2", nil},
		{"::ffff:0.0.0.0/97,::ffff:128.0.0.0/97", []string{"0.0.0.0/1,128.0.0.0/1"}},
	} {
		ps, err := parsePrefixes(tt.ranges)
		if err != nil {
			t.Fatalf("%s: %v", tt.ranges, err)
		}
		var got []string
		for _, fam := range CoveringAll(ps) {
			got = append(got, ShowPrefixes(fam))
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("CoveringAll(%s) (-want +got):\n%s", tt.ranges, diff)
		}
	}
}
