package ratelimit

import (
	"fmt"
	"strings"
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

// Override modes.
const (
	ModeEnforce = "enforce" // the override limits like any policy
	ModeShadow  = "shadow"  // decisions are computed and counted, never denied
)

// Override replaces the policy of a target at runtime: a limit ("run"), a
// limit and scope ("run:ip") or one key ("run:ip:203.0.113.7"). The most
// specific override of a bucket wins. Capacity is both the burst and the
// tokens refilled per Window. Overrides replace the tier's policy too: an
// override is an explicit number.
type Override struct {
	Target    string
	Capacity  int
	Window    time.Duration
	Mode      string    // ModeEnforce or ModeShadow
	ExpiresAt time.Time // zero: never
	Origin    string    // who set it ("api", "cli"), for listings
	CreatedAt time.Time
}

// Expired reports whether o no longer applies at now.
func (o *Override) Expired(now time.Time) bool {
	return !o.ExpiresAt.IsZero() && !now.Before(o.ExpiresAt)
}

// policy is the token bucket o sets.
func (o *Override) policy() Policy {
	return Policy{Burst: o.Capacity, Rate: o.Capacity, Window: o.Window}
}

// overrideSet is an immutable snapshot of the overrides in force, swapped
// whole on every change so that decisions read it without a lock.
type overrideSet struct {
	// One map per target level, so that a decision only looks up the levels
	// that have overrides at all.
	byKey, byScope, byLimit map[string]*resolvedOverride
	list                    []Override
	// onDemand holds, by limit name, the scopes (scopeBit) that overrides
	// of the limit's scope or keys target among OnDemandScopes, expired
	// ones included: the scopes a decision must look at besides the
	// limit's own. Nil when there are none, so that a decision costs no
	// more than a length check then.
	onDemand map[string]uint8
}

type resolvedOverride struct {
	Override
	bucket Bucket // Capacity, Interval, Window and Shadow precomputed
}

func newOverrideSet(list []Override) *overrideSet {
	s := &overrideSet{byKey: map[string]*resolvedOverride{}, byScope: map[string]*resolvedOverride{},
		byLimit: map[string]*resolvedOverride{}, list: list}
	for _, o := range list {
		r := &resolvedOverride{Override: o, bucket: o.policy().bucket()}
		r.bucket.Shadow = o.Mode == ModeShadow
		limit, rest, _ := strings.Cut(o.Target, ":")
		scope, _, _ := strings.Cut(rest, ":")
		// The global scope's one bucket, shared by every client, is never
		// penalized: one abuser's strikes or ban would refuse them all.
		r.bucket.NoPenalty = Scope(scope) == ScopeGlobal
		if sc := Scope(scope); IsOnDemand(sc) {
			if s.onDemand == nil {
				s.onDemand = map[string]uint8{}
			}
			s.onDemand[limit] |= scopeBit(sc)
		}
		switch strings.Count(o.Target, ":") {
		case 0:
			s.byLimit[o.Target] = r
		case 1:
			s.byScope[o.Target] = r
		default:
			s.byKey[o.Target] = r
		}
	}
	return s
}

// lookup returns the most specific override in force for key, whose limit
// and scope are its first limitLen and scopeLen bytes. The map lookups index
// by string(bytes) and so allocate nothing.
func (s *overrideSet) lookup(key []byte, limitLen, scopeEnd int, clock Clock) *resolvedOverride {
	if len(s.byKey) > 0 {
		if o := s.byKey[string(key)]; o.live(clock) {
			return o
		}
	}
	if len(s.byScope) > 0 {
		if o := s.byScope[string(key[:scopeEnd])]; o.live(clock) {
			return o
		}
	}
	if len(s.byLimit) > 0 {
		if o := s.byLimit[string(key[:limitLen])]; o.live(clock) {
			return o
		}
	}
	return nil
}

// lookupOnDemand is lookup for a key of one of the limit's OnDemandScopes,
// whose limit and scope are its first scopeEnd bytes: the override of the
// key, else of the scope; nil when neither is in force, and then the scope
// is not in force for this key. The limit's own override is not looked at:
// it does not put the scope in force.
func (s *overrideSet) lookupOnDemand(key []byte, scopeEnd int, clock Clock) *resolvedOverride {
	if o := s.byKey[string(key)]; o.live(clock) {
		return o
	}
	if o := s.byScope[string(key[:scopeEnd])]; o.live(clock) {
		return o
	}
	return nil
}

// live reports whether o exists and is in force; the clock is read only for
// an override with an expiry.
func (o *resolvedOverride) live(clock Clock) bool {
	return o != nil && (o.ExpiresAt.IsZero() || !o.Expired(clock.Now()))
}

// Target is a parsed override target or bucket key.
type Target struct {
	Limit    string
	Scope    Scope  // "" for a whole limit
	Identity string // "" for a whole limit or scope
}

// String is the target's canonical form.
func (t Target) String() string {
	switch {
	case t.Scope == "":
		return t.Limit
	case t.Identity == "":
		return t.Limit + ":" + string(t.Scope)
	}
	return t.Limit + ":" + string(t.Scope) + ":" + t.Identity
}

// CanonicalTarget returns target with its identity, when it has one, in the
// form overrides are stored under (an IPv6 address as its /64, as
// SetOverride keys it): what `limits get` must look for. A
// target whose identity is not one of its scope is returned as it is.
func CanonicalTarget(target string) string {
	if t, err := NormalizeTarget(target); err == nil {
		return t
	}
	return target
}

// NormalizeTarget checks the identity of target, when it has one, against
// its scope (an address for ip, "all" for global, 1 to 200 bytes for any),
// and returns target in its canonical form (CanonicalTarget). Its limit
// and scope names are not checked: ParseTarget checks them against the
// limits in force, where they are known. An identity that is not one is
// core.CodeInvalid, with ParseTarget's message.
func NormalizeTarget(target string) (string, error) {
	parts := strings.SplitN(target, ":", 3)
	if len(parts) < 3 {
		return target, nil
	}
	id, err := normalizeIdentity(Scope(parts[1]), parts[2])
	if err != nil {
		return target, err
	}
	return parts[0] + ":" + parts[1] + ":" + id, nil
}

// IsKey reports whether target names one bucket (limit:scope:identity),
// under which no other target lies.
func IsKey(target string) bool { return specificity(target) == 2 }

// ParseTarget parses "limit", "limit:scope" or "limit:scope:identity"
// against the limits in force; an unknown limit, a scope the limit does not
// have (Limit.HasScope: its own, or tenant and global), or an identity that
// is not one (a malformed IP) is core.CodeInvalid. IP identities are
// normalized (IPv6 to its /64) so that a key target matches the bucket the
// limiter uses.
func (l *Limiter) ParseTarget(s string) (Target, error) {
	if s == "" {
		return Target{}, core.Errorf(core.CodeInvalid, "a target is required: <limit>, <limit>:<scope> or <limit>:<scope>:<identity>")
	}
	parts := strings.SplitN(s, ":", 3)
	t := Target{Limit: parts[0]}
	lim := l.limit(t.Limit)
	if lim == nil {
		return Target{}, core.Wrap(core.CodeInvalid, ErrUnknownLimit, fmt.Sprintf("unknown limit %q in target %q", t.Limit, s))
	}
	if len(parts) == 1 {
		return t, nil
	}
	t.Scope = Scope(parts[1])
	if !lim.HasScope(t.Scope) {
		return Target{}, core.Errorf(core.CodeInvalid, "limit %q has no scope %q (target %q)", t.Limit, parts[1], s)
	}
	if len(parts) == 2 {
		return t, nil
	}
	id, err := normalizeIdentity(t.Scope, parts[2])
	if err != nil {
		return Target{}, err
	}
	t.Identity = id
	return t, nil
}
