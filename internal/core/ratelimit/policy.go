package ratelimit

import (
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

// Scope names whose identity a bucket is keyed on.
type Scope string

// The scopes of DESIGN §3.
const (
	ScopeIP         Scope = "ip"
	ScopeUser       Scope = "user"
	ScopeTenant     Scope = "tenant"
	ScopeUserTenant Scope = "user_tenant" // identity "<user>:<tenant>"
	ScopeGlobal     Scope = "global"      // identity "all"
)

// Scopes lists every scope, in the order the API shows them.
var scopes = [...]Scope{ScopeIP, ScopeUser, ScopeTenant, ScopeUserTenant, ScopeGlobal}

// ValidScope reports whether s names a scope.
func ValidScope(s string) bool {
	for _, sc := range scopes {
		if string(sc) == s {
			return true
		}
	}
	return false
}

// Policy is a token bucket: Burst tokens of capacity, refilled at Rate tokens
// per Window.
type Policy struct {
	Burst  int
	Rate   int
	Window time.Duration
}

// Validate returns a core.CodeInvalid error for a policy that cannot limit.
func (p Policy) Validate() error {
	switch {
	case p.Burst <= 0:
		return core.Errorf(core.CodeInvalid, "burst must be positive, got %d", p.Burst)
	case p.Rate <= 0:
		return core.Errorf(core.CodeInvalid, "rate must be positive, got %d", p.Rate)
	case p.Window < time.Millisecond:
		return core.Errorf(core.CodeInvalid, "window must be at least 1ms, got %s", p.Window)
	}
	return nil
}

// interval is the GCRA emission interval in microseconds: the time one token
// takes to refill, rounded up so that a window never admits more than Rate.
func (p Policy) interval() int64 {
	w := p.Window.Microseconds()
	return (w + int64(p.Rate) - 1) / int64(p.Rate)
}

// premium is p for the premium tier: burst and rate times m, rounded down.
func (p Policy) premium(m float64) Policy {
	return Policy{Burst: max(1, int(float64(p.Burst)*m)), Rate: max(1, int(float64(p.Rate)*m)), Window: p.Window}
}

// Premium returns p for the premium tier with multiplier m.
func (p Policy) Premium(m float64) Policy { return p.premium(m) }

// Limit is a named policy applied per scope. A request must pass every
// scope whose identity it carries; scopes with an unknown identity (no user
// yet, say) are skipped.
type Limit struct {
	Name   string
	Scopes []Scope
	Policy Policy
}

// hasScope reports whether l applies scope s.
func (l *Limit) hasScope(s Scope) bool {
	for _, sc := range l.Scopes {
		if sc == s {
			return true
		}
	}
	return false
}

// Names of the built-in limits.
const (
	LimitRun        = "run"
	LimitAssistant  = "assistant"
	LimitTenantMeta = "tenant-meta"
	LimitRLTest     = "rl-test"
	LimitSecurePing = "secure-ping"
)
