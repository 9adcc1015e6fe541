package ratelimit_test

import (
	"testing"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// TestRelated: a target relates to itself, to what covers it (its limit,
// its limit and scope) and to what lies under it; a key covers nothing and
// has nothing under it, though another key may extend it (user a:b's key
// starts with user a's).
func TestRelated(t *testing.T) {
	tests := []struct {
		o, t string
		want bool
	}{
		{"run", "run", true},
		{"run", "run:ip", true},
		{"run", "run:ip:192.0.2.1", true},
		{"run:ip", "run:ip:192.0.2.1", true},
		{"run:ip:192.0.2.1", "run:ip:192.0.2.1", true},
		{"run:ip", "run", true},
		{"run:ip:192.0.2.1", "run", true},
		{"run:ip:192.0.2.1", "run:ip", true},
		{"run:user:a:b", "run:user:a", false},
		{"run:user:a", "run:user:a:b", false},
		{"secure-ping:user_tenant:u:t:x", "secure-ping:user_tenant:u:t", false},
		{"secure-ping:user_tenant:u:t", "secure-ping:user_tenant:u:t:x", false},
		{"run:tenant:t1", "run:tenant", true},
		{"run:tenant", "run:tenant:t1", true},
		{"run:ip", "run:user", false},
		{"run", "run-fast", false},
		{"run:ip:192.0.2.1", "run:ip:192.0.2.10", false},
	}
	for _, tt := range tests {
		if got := ratelimit.Related(tt.o, tt.t); got != tt.want {
			t.Errorf("Related(%q, %q) = %v, want %v", tt.o, tt.t, got, tt.want)
		}
	}
}
