package ratelimit

import "time"

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

// MaxCapacity bounds a bucket's capacity and its rate per window (2^30,
// about a billion): the memory store keeps a capacity in 32 bits, and every
// product of a capacity and an interval in the bucket arithmetic stays far
// inside int64 microseconds. Settings and overrides beyond it are refused.
const MaxCapacity = 1 << 30

// MaxWindow bounds a policy's window: a year.
const MaxWindow = 365 * 24 * time.Hour

// MaxOverrideTTL bounds an override's time to live: ten years (none at all
// is "until deleted").
const MaxOverrideTTL = 10 * MaxWindow

// Policy is a token bucket: Burst tokens of capacity, refilled at Rate tokens
// per Window.
type Policy struct {
	Burst  int
	Rate   int
	Window time.Duration
}

// interval is the GCRA emission interval in microseconds: the time one token
// takes to refill, rounded up so that a window never admits more than Rate.
func (p Policy) interval() int64 {
	w := p.Window.Microseconds()
	return (w + int64(p.Rate) - 1) / int64(p.Rate)
}

// bucket is the bucket p sets, for any key.
func (p Policy) bucket() Bucket {
	return Bucket{Capacity: p.Burst, Interval: p.interval(), Window: p.Window.Microseconds()}
}

// Premium returns p for the premium tier with multiplier m: burst and rate
// times m, rounded down, at least 1 and at most MaxCapacity.
func (p Policy) Premium(m float64) Policy {
	scale := func(n int) int { return int(max(1, min(float64(n)*m, MaxCapacity))) }
	return Policy{Burst: scale(p.Burst), Rate: scale(p.Rate), Window: p.Window}
}

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
