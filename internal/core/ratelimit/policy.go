package ratelimit

import (
	"fmt"
	"slices"
	"time"
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

// onDemand are the scopes every limit has besides those it applies always
// (Limit.Scopes): each is in force only where an override targets it. An
// override of limit:tenant gives every tenant's requests a bucket of their
// own (limit:tenant:<tenant>) with its policy; one of limit:tenant:T, that
// tenant's alone; an override of limit:global (or limit:global:all) gives
// all the limit's requests one shared bucket, limit:global:all. An
// override of the limit itself never puts them in force: a limit's own
// policy is not a tenant's or everyone's.
var onDemand = [...]Scope{ScopeTenant, ScopeGlobal}

// OnDemandScopes returns the scopes that an override puts in force on a
// limit that does not apply them always: tenant and global.
func OnDemandScopes() []Scope { return onDemand[:] }

// IsOnDemand reports whether sc is one of OnDemandScopes.
func IsOnDemand(sc Scope) bool { return slices.Contains(onDemand[:], sc) }

// scopeBit is sc's bit in a set of scopes (overrideSet.onDemand).
func scopeBit(sc Scope) uint8 {
	for i, x := range scopes {
		if x == sc {
			return 1 << i
		}
	}
	return 0
}

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

// RefillShortfall is why p's bucket cannot refill its rate to 1%, or "":
// the interval is whole microseconds, rounded up, so 600,001 a second
// refilled 500,000 and 1,500,000 a second 1,000,000, while the policy said
// otherwise. A rate of at most 10,000 a second, or one that divides the
// window's microseconds, is exact to 1%. New policies are refused with it
// (SetOverride, the settings); one stored before is applied as its bucket
// can keep it.
func (p Policy) RefillShortfall() string {
	w := p.Window.Microseconds()
	iv := p.interval()
	if float64(iv)*float64(p.Rate) <= float64(w)*1.01 {
		return ""
	}
	return fmt.Sprintf("cannot be refilled exactly: a bucket refills a token per whole microsecond (every %dµs here: %d per %s); "+
		"every rate up to %d per %s is exact to 1%%, and above it one that divides the window's %d µs",
		iv, w/iv, p.Window, int64(refillExactPerSecond)*int64(p.Window/time.Second), p.Window, w)
}

// refillExactPerSecond is the rate up to which every policy refills within
// 1% of its rate: 100 µs a token or more.
const refillExactPerSecond = 10_000

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
// yet, say) are skipped. Besides its Scopes, a limit has the OnDemandScopes
// it does not list, each in force only where an override targets it.
type Limit struct {
	Name   string
	Scopes []Scope
	Policy Policy
}

// hasScope reports whether l applies scope s always.
func (l *Limit) hasScope(s Scope) bool {
	for _, sc := range l.Scopes {
		if sc == s {
			return true
		}
	}
	return false
}

// HasScope reports whether s is a scope of l: one it applies always, or
// one an override can put in force (OnDemandScopes). It is what a target
// limit:scope may name.
func (l *Limit) HasScope(s Scope) bool { return l.hasScope(s) || IsOnDemand(s) }

// Names of the built-in limits.
const (
	LimitRun        = "run"
	LimitAssistant  = "assistant"
	LimitTenantMeta = "tenant-meta"
	LimitRLTest     = "rl-test"
	LimitSecurePing = "secure-ping"
)
