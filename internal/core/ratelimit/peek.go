package ratelimit

import (
	"context"
	"time"
)

// Peeked is one bucket as the next decision of its policy would find it,
// before that decision spends or strikes anything.
type Peeked struct {
	// Capacity is the capacity after penalties the decision is made at (a
	// banned key: the capacity its ban answers).
	Capacity int
	// Remaining is the tokens the decision finds; it admits the request
	// when there is at least one (a shadow bucket admits it anyway).
	Remaining int
	// Strikes are those left at now, decayed; a decision that finds the
	// bucket full a whole window after the last strike forgives them all,
	// and so does this view.
	Strikes int
	// BannedUntil is the end of the key's ban in Unix µs, 0 for none.
	BannedUntil int64
	// RetryAfter is the time until a request passes, in µs: 0 when one
	// passes now.
	RetryAfter int64
	// ResetAfter is the time until the bucket is full again, in µs.
	ResetAfter int64
}

// Peek returns what the next decision of bucket b at now (Unix µs) would
// find in c, a fresh key being the zero Cell, without deciding it. It runs
// Apply on copies of c, so the figures are the decision's own (the debt
// rescaled to a changed interval, a clock that stepped back, strikes decayed
// and forgiven) and there is no second copy of the bucket arithmetic: as a
// shadow request first, which never strikes and passes a ban, and, when the
// key is banned and b not a shadow bucket, as the request the ban refuses.
// c is not changed.
func (c Cell) Peek(b Bucket, r *Rules, now int64) Peeked {
	var res Result
	probe, shadow := c, b
	shadow.Shadow = true
	probe.Apply(&shadow, r, now, &res)
	var p Peeked
	if probe.BannedUntil > now {
		// probe's ban end is c's, moved as the decision moves it.
		p.BannedUntil = probe.BannedUntil
		if !b.Shadow {
			banned := c
			banned.Apply(&b, r, now, &res)
			return Peeked{Capacity: res.Capacity, Strikes: res.Strikes, BannedUntil: res.BannedUntil,
				RetryAfter: res.RetryAfter, ResetAfter: res.ResetAfter}
		}
	}
	p.Capacity, p.Strikes = res.Capacity, res.Strikes
	if res.Shadowed {
		// No token: the request would be refused (by a shadow bucket, only
		// counted). ResetAfter is the debt, RetryAfter the next token.
		p.RetryAfter, p.ResetAfter = res.RetryAfter, res.ResetAfter
		return p
	}
	// Admitted: the decision spent one token, which the state still holds.
	p.Remaining = res.Remaining + 1
	p.ResetAfter = max(res.ResetAfter-b.Interval, 0)
	return p
}

// KeyState is one bucket key's live state for operators: the policy its
// next request is decided with, and what that decision would find.
type KeyState struct {
	Key      string // canonical: "run:ip:203.0.113.7", an IPv6 address as its /64
	Limit    string
	Scope    Scope
	Identity string
	// InForce is false for a key of a tenant or global scope that no
	// override puts in force: requests meet no such bucket, and the
	// figures below are zero.
	InForce bool
	// Policy is the policy in force for the key (the standard tier's, when
	// no override applies); Override is the override it comes from, nil
	// for the limit's own.
	Policy   Policy
	Override *Override
	Shadow   bool
	// Fresh says the key is as one never seen: the store holds nothing for
	// it, or nothing that still matters (a full bucket, no strike or ban).
	Fresh bool
	Peeked
	// LastSeen is the key's last decision, LastStrike the last 429 that
	// struck it (while the store keeps it: until the strikes are forgiven
	// or turn into a ban) and LastBan the start of its last ban; zero when
	// unknown.
	LastSeen, LastStrike, LastBan time.Time
	// Now is the store's time the state is computed at.
	Now time.Time
	// Degraded says the backend is failing: the figures are the local
	// store's, which decides meanwhile.
	Degraded bool
}

// Peek returns the live state of one bucket key ("run:ip:203.0.113.7") as
// the next request of the standard tier would find it, under the limits and
// overrides this limiter enforces. It changes nothing: no token, no strike,
// no last-seen time, no ban cached. An unknown limit, a scope the limit
// lacks, a malformed identity or a target that is not a whole key is
// core.CodeInvalid.
func (l *Limiter) Peek(ctx context.Context, key string) (KeyState, error) {
	return l.peek(ctx, key, nil, l.overrides.Load())
}

// PeekWith is Peek under the given limits (those the daemons on a shared
// store publish, which may differ from this process's) and overrides (those
// stored, related to key: expired ones are not applied).
func (l *Limiter) PeekWith(ctx context.Context, key string, limits LimitSet, overrides []Override) (KeyState, error) {
	return l.peek(ctx, key, &limits, newOverrideSet(overrides))
}

func (l *Limiter) peek(ctx context.Context, key string, limits *LimitSet, set *overrideSet) (KeyState, error) {
	t, err := l.parseBucketKey(key, "a bucket is one key <limit>:<scope>:<identity>, got %q")
	if err != nil {
		return KeyState{}, err
	}
	e := l.limit(t.Limit)
	st := KeyState{Key: t.String(), Limit: t.Limit, Scope: t.Scope, Identity: t.Identity, InForce: true}
	k := []byte(st.Key)
	scopeEnd := len(t.Limit) + 1 + len(t.Scope)
	var o *resolvedOverride
	if e.hasScope(t.Scope) {
		o = set.lookup(k, len(t.Limit), scopeEnd, l.clock)
	} else if o = set.lookupOnDemand(k, scopeEnd, l.clock); o == nil {
		st.InForce = false
		return st, nil
	}
	var b Bucket
	if o != nil {
		b, st.Policy = o.bucket, o.policy()
		ov := o.Override
		st.Override = &ov
	} else {
		st.Policy = e.Policy
		if limits != nil {
			for _, tl := range limits.Limits {
				if tl.Name == e.Name {
					st.Policy = tl.Policy
				}
			}
		}
		b = st.Policy.bucket()
	}
	b.Key = k
	st.Shadow = b.Shadow

	c, now, found, err := l.peekStore(ctx, st.Key, &st.Degraded)
	if err != nil {
		return KeyState{}, err
	}
	st.Peeked = c.Peek(b, &l.rules, now)
	st.Now = time.UnixMicro(now).UTC()
	st.Fresh = !found || c.Idle(&l.rules, now)
	if found {
		// The memory store keeps the last-seen time to the second; the
		// last strike or ban, exact, was a decision too.
		st.LastSeen = time.UnixMicro(max(c.Seen, c.StrikeAt, c.LastBan)).UTC()
		if c.StrikeAt > 0 {
			st.LastStrike = time.UnixMicro(c.StrikeAt).UTC()
		}
		if c.LastBan > 0 {
			st.LastBan = time.UnixMicro(c.LastBan).UTC()
		}
	}
	return st, nil
}

// peekStore reads key from the store that decides it now: the local store
// while the remote one is known to be failing (degraded then says so),
// else the remote store, falling back to the local one when it fails and
// one of a Cluster's masters is known to be failing.
func (l *Limiter) peekStore(ctx context.Context, key string, degraded *bool) (Cell, int64, bool, error) {
	if l.local != nil && l.backend.down.Load() {
		*degraded = true
		return l.local.Peek(ctx, key)
	}
	cctx, cancel := l.backendContext(ctx)
	defer cancel()
	c, now, found, err := l.store.Peek(cctx, key)
	if err != nil && l.local != nil && l.parts.down.Load() > 0 && ctx.Err() == nil {
		*degraded = true
		return l.local.Peek(ctx, key)
	}
	return c, now, found, err
}

// What the next request of a peeked key meets (KeyState.Outcome): the
// decision outcomes of refrakt_ratelimit_decisions_total, and fresh and
// not_in_force.
const (
	PeekNotInForce    = "not_in_force"   // a tenant or global scope no override puts in force
	PeekFresh         = "fresh"          // as a key never seen: a full bucket
	PeekAllowed       = "allowed"        // at least one token
	PeekLimited       = "limited"        // no token: refused, and struck
	PeekShadowLimited = "shadow_limited" // no token, but a shadow policy: counted, let through
	PeekBanned        = "banned"         // refused until BannedUntil
)

// Outcome says in one word what the key's next request meets.
func (s *KeyState) Outcome() string {
	switch {
	case !s.InForce:
		return PeekNotInForce
	case s.BannedUntil > 0 && !s.Shadow:
		return PeekBanned
	case s.Remaining > 0 && s.Fresh:
		return PeekFresh
	case s.Remaining > 0:
		return PeekAllowed
	case s.Shadow:
		return PeekShadowLimited
	}
	return PeekLimited
}
