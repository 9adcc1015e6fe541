package ratelimit

import (
	"net/netip"
	"testing"
)

func TestIPKey(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"203.0.113.7", "203.0.113.7", true},
		{"0.0.0.0", "0.0.0.0", true},
		{"255.255.255.255", "255.255.255.255", true},
		{"256.1.1.1", "", false},
		{"01.2.3.4", "", false},
		{"1.2.3", "", false},
		{"1.2.3.4.5", "", false},
		{"1..3.4", "", false},
		{"1.2.3.4 ", "", false},
		{"", "", false},
		{"::ffff:192.0.2.1", "192.0.2.1", true},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", true},
		{"2001:DB8:1:2::", "2001:db8:1:2::/64", true},
		{"fe80::1%eth0", "", false},
		{"not-an-ip", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := IPKey(tt.in)
			if ok != tt.ok || (ok && got != tt.want) {
				t.Errorf("IPKey(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
			// The fast path agrees with netip on every input.
			if a, err := netip.ParseAddr(tt.in); isDottedQuad(tt.in) != (err == nil && a.Is4() && a.String() == tt.in) {
				t.Errorf("isDottedQuad(%q) disagrees with netip", tt.in)
			}
		})
	}
}

func FuzzDottedQuad(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "01.2.3.4", "256.0.0.0", "1.2.3.4.", "::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := netip.ParseAddr(s)
		want := err == nil && a.Is4() && a.String() == s
		if got := isDottedQuad(s); got != want {
			t.Errorf("isDottedQuad(%q) = %v, netip says %v", s, got, want)
		}
	})
}
