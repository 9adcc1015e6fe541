package ratelimit

import (
	"fmt"
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

// BackendErrorPolicy says what the limiter does when its store fails or
// times out.
type BackendErrorPolicy string

// The policies of RATE_LIMIT_ON_BACKEND_ERROR.
const (
	// OnErrorLocal decides with an in-process store until the backend answers
	// again (re-checked with backoff).
	OnErrorLocal BackendErrorPolicy = "local"
	// OnErrorAllow admits every request while the backend fails.
	OnErrorAllow BackendErrorPolicy = "allow"
	// OnErrorDeny refuses every request while the backend fails.
	OnErrorDeny BackendErrorPolicy = "deny"
)

// Config is everything the limiter can be told. The daemon maps environment
// variables and flags onto it; zero values are not defaults, so start from
// DefaultConfig.
type Config struct {
	// Enabled turns limiting on (RATE_LIMIT_ENABLED, default true). The
	// limiter itself always decides; the HTTP middleware consults Enabled.
	Enabled bool
	// RunBurst is the bucket capacity of "run" (RATE_LIMIT_RUN_BURST, 10).
	RunBurst int
	// RunPerMinute is the refill of "run" per 60s (RATE_LIMIT_RUN_PER_MINUTE, 30).
	RunPerMinute int
	// AssistantPerMinute is burst and refill of "assistant" per 60s
	// (RATE_LIMIT_ASSISTANT_PER_MINUTE, 20).
	AssistantPerMinute int
	// PremiumMultiplier multiplies burst and rate for the premium tier,
	// rounded down (RATE_LIMIT_PREMIUM_MULTIPLIER, 3).
	PremiumMultiplier float64
	// PenaltyFactor shrinks capacity per strike: capacity × factor^strikes,
	// at least 1 (PENALTY_FACTOR, 0.5).
	PenaltyFactor float64
	// PenaltyDecay forgives one strike per this long without a 429
	// (PENALTY_DECAY, 60s).
	PenaltyDecay time.Duration
	// BanAfterStrikes bans a key when it reaches this many strikes; 0 never
	// bans (BAN_AFTER_STRIKES, 5).
	BanAfterStrikes int
	// BanDuration is the first ban's length, doubled for each repeat within
	// BanRepeatWindow (BAN_SECONDS, 60s).
	BanDuration time.Duration
	// BanMax caps a ban's length (1h).
	BanMax time.Duration
	// BanRepeatWindow is how long a ban counts as recent for doubling (1h).
	BanRepeatWindow time.Duration
	// OnBackendError is local, allow or deny (RATE_LIMIT_ON_BACKEND_ERROR, local).
	OnBackendError BackendErrorPolicy
	// BackendTimeout bounds every call to a remote store
	// (RATE_LIMIT_BACKEND_TIMEOUT, 100ms).
	BackendTimeout time.Duration
	// OverrideRefresh is how often overrides are re-read from the store as a
	// safety net behind change notifications (1s).
	OverrideRefresh time.Duration
	// ErrorLogInterval is the least time between two logs of backend errors (10s).
	ErrorLogInterval time.Duration
	// Custom are the limits of the user's own, after the built-ins
	// (RATE_LIMITS, default none; ParseLimits, CheckCustomLimits).
	Custom []Limit
}

// LimitingOffWarning is what the daemon and the CLI say of an override set
// while Config.Enabled is false.
const LimitingOffWarning = "rate limiting is off (RATE_LIMIT_ENABLED=false): the override is stored, and enforced only once limiting is on"

// BanLimitingOffWarning is what they say of an operator's ban then.
const BanLimitingOffWarning = "rate limiting is off (RATE_LIMIT_ENABLED=false): the ban is stored, and enforced only once limiting is on (if it has not ended by then)"

// DefaultConfig returns the defaults of DESIGN §3 and §7.
func DefaultConfig() Config {
	return Config{
		Enabled:            true,
		RunBurst:           10,
		RunPerMinute:       30,
		AssistantPerMinute: 20,
		PremiumMultiplier:  3,
		PenaltyFactor:      0.5,
		PenaltyDecay:       60 * time.Second,
		BanAfterStrikes:    5,
		BanDuration:        60 * time.Second,
		BanMax:             MaxBan,
		BanRepeatWindow:    time.Hour,
		OnBackendError:     OnErrorLocal,
		BackendTimeout:     100 * time.Millisecond,
		OverrideRefresh:    time.Second,
		ErrorLogInterval:   10 * time.Second,
	}
}

// Bounds of the settings (the daemon's settings check them before start).
const (
	// MaxPremiumMultiplier bounds RATE_LIMIT_PREMIUM_MULTIPLIER.
	MaxPremiumMultiplier = 1000
	// MaxBanAfterStrikes bounds BAN_AFTER_STRIKES.
	MaxBanAfterStrikes = 250
	// MaxStrikes is the most strikes a key holds: with bans off
	// (BAN_AFTER_STRIKES=0) a client that goes on being refused stays at
	// it, its penalty over at most MaxStrikes × PENALTY_DECAY after its
	// last 429 (without a bound, a day of retries held a key at capacity 1
	// for years, and every decision took a step per strike, inside Redis's
	// script too). The Redis script has the same number.
	MaxStrikes = MaxBanAfterStrikes
	// MaxBan caps a ban's length, repeats included (DESIGN §3), and so
	// BAN_SECONDS.
	MaxBan = time.Hour
)

// Validate returns a core.CodeInvalid error naming the first bad setting.
func (c Config) Validate() error {
	bad := func(setting string, v any) error {
		return core.Errorf(core.CodeInvalid, "%s: invalid value %v", setting, v)
	}
	switch {
	case c.RunBurst <= 0 || c.RunBurst > MaxCapacity:
		return bad("RATE_LIMIT_RUN_BURST", c.RunBurst)
	case c.RunPerMinute <= 0 || c.RunPerMinute > MaxCapacity:
		return bad("RATE_LIMIT_RUN_PER_MINUTE", c.RunPerMinute)
	case c.AssistantPerMinute <= 0 || c.AssistantPerMinute > MaxCapacity:
		return bad("RATE_LIMIT_ASSISTANT_PER_MINUTE", c.AssistantPerMinute)
	case !(c.PremiumMultiplier >= 1 && c.PremiumMultiplier <= MaxPremiumMultiplier):
		return bad("RATE_LIMIT_PREMIUM_MULTIPLIER", c.PremiumMultiplier)
	case !(c.PenaltyFactor > 0 && c.PenaltyFactor <= 1):
		return bad("PENALTY_FACTOR", c.PenaltyFactor)
	case c.PenaltyDecay <= 0:
		return bad("PENALTY_DECAY", c.PenaltyDecay)
	case c.BanAfterStrikes < 0 || c.BanAfterStrikes > MaxBanAfterStrikes:
		return bad("BAN_AFTER_STRIKES", c.BanAfterStrikes)
	case c.BanDuration < time.Second:
		return bad("BAN_SECONDS", c.BanDuration)
	case c.BanMax < c.BanDuration:
		return bad("ban maximum", c.BanMax)
	case c.BanRepeatWindow < 0:
		return bad("ban repeat window", c.BanRepeatWindow)
	case c.OnBackendError != OnErrorLocal && c.OnBackendError != OnErrorAllow && c.OnBackendError != OnErrorDeny:
		return bad("RATE_LIMIT_ON_BACKEND_ERROR", c.OnBackendError)
	case c.BackendTimeout <= 0:
		return bad("RATE_LIMIT_BACKEND_TIMEOUT", c.BackendTimeout)
	case c.OverrideRefresh <= 0 || c.OverrideRefresh > time.Second:
		return bad("override refresh", c.OverrideRefresh)
	case c.ErrorLogInterval < 0:
		return bad("error log interval", c.ErrorLogInterval)
	}
	if ps := c.RefillProblems(); len(ps) > 0 {
		return core.Errorf(core.CodeInvalid, "%s: %s", ps[0].Setting, ps[0].Message("RATE_LIMIT_PREMIUM_MULTIPLIER"))
	}
	if p := CheckCustomLimits(c.Custom, c.PremiumMultiplier, "RATE_LIMIT_PREMIUM_MULTIPLIER"); p != nil {
		return core.Errorf(core.CodeInvalid, "RATE_LIMITS: entry %d (%s): %s", p.Entry, p.Name, p.Why)
	}
	return nil
}

// RefillProblem is a settable rate that its bucket cannot refill to 1%
// (Policy.RefillShortfall), in the normal tier or the premium tier.
type RefillProblem struct {
	Setting   string  // RATE_LIMIT_RUN_PER_MINUTE or RATE_LIMIT_ASSISTANT_PER_MINUTE
	PerMinute int     // its value
	Premium   float64 // the multiplier, when the premium tier's rate is the one; else 0
	Why       string
}

// Message is p as an error's text after its setting's name; multiplier
// names the premium multiplier's setting (a variable or a flag).
func (p RefillProblem) Message(multiplier string) string {
	if p.Premium > 0 {
		return fmt.Sprintf("%d per minute × %s %g (the premium tier's rate) %s", p.PerMinute, multiplier, p.Premium, p.Why)
	}
	return fmt.Sprintf("%d per minute %s", p.PerMinute, p.Why)
}

// RefillProblems returns c's settable rates within their bounds, and their
// premium tier's (with a multiplier within its bounds), that a bucket
// cannot refill to 1%.
func (c Config) RefillProblems() []RefillProblem {
	var out []RefillProblem
	for _, r := range []struct {
		setting string
		v       int
	}{{"RATE_LIMIT_RUN_PER_MINUTE", c.RunPerMinute}, {"RATE_LIMIT_ASSISTANT_PER_MINUTE", c.AssistantPerMinute}} {
		if r.v < 1 || r.v > MaxCapacity {
			continue
		}
		p := Policy{Burst: r.v, Rate: r.v, Window: time.Minute}
		if why := p.RefillShortfall(); why != "" {
			out = append(out, RefillProblem{Setting: r.setting, PerMinute: r.v, Why: why})
		} else if m := c.PremiumMultiplier; m >= 1 && m <= MaxPremiumMultiplier {
			if why := p.Premium(m).RefillShortfall(); why != "" {
				out = append(out, RefillProblem{Setting: r.setting, PerMinute: r.v, Premium: m, Why: why})
			}
		}
	}
	return out
}

// Limits returns the built-in limits of DESIGN §3 with this configuration,
// then the user's own (Custom).
func (c Config) Limits() []Limit {
	const minute = time.Minute
	return append([]Limit{
		{Name: LimitRun, Scopes: []Scope{ScopeIP, ScopeUser}, Policy: Policy{Burst: c.RunBurst, Rate: c.RunPerMinute, Window: minute}},
		{Name: LimitAssistant, Scopes: []Scope{ScopeIP, ScopeUser}, Policy: Policy{Burst: c.AssistantPerMinute, Rate: c.AssistantPerMinute, Window: minute}},
		{Name: LimitTenantMeta, Scopes: []Scope{ScopeIP}, Policy: Policy{Burst: 60, Rate: 60, Window: minute}},
		{Name: LimitRLTest, Scopes: []Scope{ScopeIP}, Policy: Policy{Burst: 3, Rate: 3, Window: minute}},
		{Name: LimitSecurePing, Scopes: []Scope{ScopeUserTenant}, Policy: Policy{Burst: 30, Rate: 30, Window: minute}},
	}, c.Custom...)
}

// Rules turns the penalty settings into the microsecond form stores use.
func (c Config) Rules() Rules {
	return Rules{
		PenaltyFactor: c.PenaltyFactor,
		DecayMicros:   c.PenaltyDecay.Microseconds(),
		BanAfter:      c.BanAfterStrikes,
		BanMicros:     c.BanDuration.Microseconds(),
		BanMaxMicros:  c.BanMax.Microseconds(),
		RepeatMicros:  c.BanRepeatWindow.Microseconds(),
	}
}
