package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

// Deps are what a Limiter works with.
type Deps struct {
	// Store keeps the buckets and overrides. Required.
	Store Store
	// Local, when set, marks Store as remote: each call to Store is bounded
	// by Config.BackendTimeout (by the store itself when it is a
	// BoundedStore within it), bans are cached in-process, and Local (an
	// in-process store) decides while Store fails under OnErrorLocal.
	Local Store
	// Clock defaults to SystemClock.
	Clock Clock
	// Observer defaults to NopObserver.
	Observer Observer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Limiter is the rate-limiting service: it resolves a request to its buckets
// (limit → scopes → tier → override) and asks its store to decide.
type Limiter struct {
	cfg   Config
	rules Rules
	order []*limitEntry // the limits, in the order of DESIGN §3
	store Store
	local Store
	clock Clock
	obs   Observer
	log   *slog.Logger

	overrides atomic.Pointer[overrideSet]
	scratch   sync.Pool
	backend   backendState
	parts     partitions
	bans      banCache
	// bounded says the remote store bounds its own Takes within
	// Config.BackendTimeout (BoundedStore).
	bounded bool
	// one is the store when it is a local OneTaker: a request with one
	// identity is then decided without the scratch (allowOne).
	one OneTaker

	// refresh is what RefreshOverrides last loaded, under its lock.
	refresh overridesRefresh
}

// limitEntry is a limit with its buckets for both tiers and its scopes' key
// prefixes precomputed. Its Scopes slice points into scopes: everything a
// decision reads sits in this one allocation, not in a small slice that may
// share a cache line with memory another core writes.
type limitEntry struct {
	Limit
	normal, premium Bucket
	scopes          [maxScopes]Scope
	prefixes        [maxScopes]string
	// demand are the limit's OnDemandScopes that it does not apply always,
	// with their key prefixes: looked at only where overrides target them
	// (overrideSet.onDemand).
	demand         []Scope
	demandArr      [len(onDemand)]Scope
	demandPrefixes [len(onDemand)]string
}

// maxScopes bounds the scopes of one limit (there are five scopes).
const maxScopes = len(scopes)

// scratch is the per-call working memory, pooled so a decision allocates
// nothing.
type scratch struct {
	keys   [maxScopes][]byte
	ids    [maxScopes]string
	scopes [maxScopes]Scope
	bs     [maxScopes]Bucket
	rs     [maxScopes]Result
}

// New returns a Limiter for cfg. Call Run to keep overrides fresh.
func New(cfg Config, d Deps) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Store == nil {
		return nil, core.Errorf(core.CodeInvalid, "ratelimit: no store")
	}
	if d.Clock == nil {
		d.Clock = SystemClock{}
	}
	if d.Observer == nil {
		d.Observer = NopObserver{}
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	l := &Limiter{
		cfg: cfg, rules: cfg.Rules(),
		store: d.Store, local: d.Local, clock: d.Clock, obs: d.Observer, log: d.Logger,
	}
	for _, lim := range cfg.Limits() {
		if lim.hasScope(ScopeGlobal) {
			// Its bucket is the limit's own policy, which penalizes: the
			// global scope is put in force by an override, never struck.
			return nil, core.Errorf(core.CodeInvalid, "limit %s applies the global scope always; it is for overrides only", lim.Name)
		}
		e := &limitEntry{Limit: lim, normal: lim.Policy.bucket(), premium: lim.Policy.Premium(cfg.PremiumMultiplier).bucket()}
		e.Scopes = e.scopes[:copy(e.scopes[:], lim.Scopes)]
		for i, sc := range e.Scopes {
			e.prefixes[i] = keyPrefix(lim.Name, sc)
		}
		e.demand = e.demandArr[:0]
		for _, sc := range onDemand {
			if !lim.hasScope(sc) {
				e.demandPrefixes[len(e.demand)] = keyPrefix(lim.Name, sc)
				e.demand = append(e.demand, sc)
			}
		}
		if len(e.Scopes)+len(e.demand) > maxScopes {
			return nil, core.Errorf(core.CodeInvalid, "limit %s has too many scopes", lim.Name)
		}
		l.order = append(l.order, e)
	}
	if b, ok := d.Store.(BoundedStore); ok && d.Local != nil {
		t := b.TakeTimeout()
		l.bounded = t > 0 && t <= cfg.BackendTimeout
	}
	if p, ok := d.Store.(PartitionedStore); ok && p.Partitioned() {
		l.parts.store, l.parts.m = p, map[string]*backendState{}
	}
	if o, ok := d.Store.(OneTaker); ok && d.Local == nil {
		l.one = o
	}
	l.overrides.Store(newOverrideSet(nil))
	l.scratch.New = func() any {
		s := new(scratch)
		for i := range s.keys {
			s.keys[i] = make([]byte, 0, 64)
		}
		return s
	}
	l.bans.m = map[string]cachedBan{}
	return l, nil
}

// Config returns the configuration the limiter was built with.
func (l *Limiter) Config() Config { return l.cfg }

// Limits returns the limits in force, in the order of DESIGN §3.
func (l *Limiter) Limits() []Limit {
	out := make([]Limit, len(l.order))
	for i, e := range l.order {
		out[i] = e.Limit
	}
	return out
}

// TieredLimit is a limit with the policy of its premium tier.
type TieredLimit struct {
	Limit
	// Premium is the policy of X-RateLimit-Tier: premium (the limit's
	// policy × RATE_LIMIT_PREMIUM_MULTIPLIER).
	Premium Policy
}

// LimitSet is what the limiter enforces, as `limits get` shows it: whether
// limiting is on, and each limit with its premium tier. The daemon answers
// it, publishes it on Redis, and the CLI reads it there: one function
// builds it for all three.
type LimitSet struct {
	Enabled bool
	Limits  []TieredLimit
}

// LimitSet returns the limits l enforces, in their order.
func (l *Limiter) LimitSet() LimitSet {
	out := LimitSet{Enabled: l.cfg.Enabled, Limits: make([]TieredLimit, len(l.order))}
	for i, e := range l.order {
		out.Limits[i] = TieredLimit{Limit: e.Limit, Premium: e.Policy.Premium(l.cfg.PremiumMultiplier)}
	}
	return out
}

// Allow decides one request. A request passes only if every scope of its
// limit that it carries an identity for passes. An error is core.CodeInvalid
// for an unknown limit or a request without any identity its limit needs,
// and core.CodeUnavailable when the store fails under OnErrorDeny.
func (l *Limiter) Allow(ctx context.Context, req Request) (d Decision, err error) {
	e := l.limit(req.Limit)
	if e == nil {
		return Decision{}, core.Wrap(core.CodeInvalid, ErrUnknownLimit, fmt.Sprintf("unknown limit %q", req.Limit))
	}
	if l.one != nil && l.allowOne(e, &req, &d) {
		return d, nil
	}
	// The scratch goes back to its pool at each return (not by a defer:
	// this is every request's path). A panic in between only loses it.
	s := l.scratch.Get().(*scratch)

	// The ban cache's generation before the overrides are read: a change
	// of them drops the cached bans after storing the new set, so a ban
	// decided under the old set is not cached after the drop (add).
	var gen uint64
	if l.local != nil {
		gen = l.bans.generation()
	}
	set := l.overrides.Load()
	n := 0
	for j, sc := range e.Scopes {
		if !req.carries(sc) {
			continue // no identity for this scope: skipped before building its key
		}
		key, id, ok := appendKey(s.keys[n][:0], e.prefixes[j], sc, &req)
		s.keys[n] = key
		if !ok {
			// An identity carried but unusable (too long, or not an
			// address): refused, never skipped, or the request would pass
			// without the scope's limit.
			l.scratch.Put(s)
			return Decision{}, badIdentity(sc)
		}
		b := l.policy(set, e, key, sc, req.Premium)
		s.bs[n] = *b
		s.bs[n].Key = key
		s.ids[n], s.scopes[n] = id, sc
		n++
	}
	if n == 0 {
		l.scratch.Put(s)
		return Decision{}, core.Errorf(core.CodeInvalid, "limit %s needs %s", e.Name, scopeNeeds(e.Scopes))
	}
	if len(set.onDemand) > 0 { // without any override of a tenant or global scope, nothing more
		var err error
		if n, err = l.addOnDemand(set, e, &req, s, n); err != nil {
			l.scratch.Put(s)
			return Decision{}, err
		}
	}
	bs, rs := s.bs[:n], s.rs[:n]

	if l.local != nil {
		if i, ban, now := l.bans.banned(bs, l.clock); i >= 0 {
			rs[i] = Result{Banned: true, BannedUntil: ban.until, Capacity: ban.capacity, ResetAfter: max(ban.full-now, 0), RetryAfter: max(ban.retry-now, 1)}
			l.decide(&d, e, s.scopes[i], s.ids[i], &s.bs[i], &rs[i], true)
			l.scratch.Put(s)
			return d, nil
		}
		if err := l.takeRemote(ctx, bs, rs); err != nil {
			d = Decision{Allowed: false, Limit: e.Name, Scope: s.scopes[0], Identity: s.ids[0], RetryAfter: time.Second}
			l.scratch.Put(s)
			return d, err
		}
	} else if err := l.store.Take(ctx, &l.rules, bs, rs); err != nil {
		l.scratch.Put(s)
		return Decision{}, err
	}

	deny, tight := -1, 0
	for i := range rs {
		// Of the scopes that refuse, the one that refuses longest decides:
		// its Retry-After is when the request can pass them all.
		if !rs[i].Allowed && (deny < 0 || rs[i].RetryAfter > rs[deny].RetryAfter) {
			deny = i
		}
		if rs[i].Shadowed && !rs[tight].Shadowed || rs[i].Shadowed == rs[tight].Shadowed && rs[i].Remaining < rs[tight].Remaining {
			tight = i
		}
		if rs[i].NewBan {
			l.obs.Banned()
		}
		if rs[i].Banned && l.local != nil {
			l.bans.add(bs[i].Key, &rs[i], gen, micros(l.clock.Now()))
		}
	}
	i := tight
	if deny >= 0 {
		i = deny
	}
	l.decide(&d, e, s.scopes[i], s.ids[i], &s.bs[i], &rs[i], deny >= 0)
	l.scratch.Put(s)
	return d, nil
}

// addOnDemand adds to the n buckets of s those of e's OnDemandScopes that
// an override in set puts in force for req (limit:scope, or the key of
// req's identity), each with that override's policy, and returns how many
// buckets s then holds. A scope whose identity req does not carry (no
// tenant) is skipped, as the limit's own are; one carried but unusable is
// refused.
func (l *Limiter) addOnDemand(set *overrideSet, e *limitEntry, req *Request, s *scratch, n int) (int, error) {
	bits := set.onDemand[e.Name]
	if bits == 0 {
		return n, nil
	}
	for j, sc := range e.demand {
		if bits&scopeBit(sc) == 0 || !req.carries(sc) {
			continue
		}
		prefix := e.demandPrefixes[j]
		key, id, ok := appendKey(s.keys[n][:0], prefix, sc, req)
		s.keys[n] = key
		if !ok {
			return n, badIdentity(sc)
		}
		o := set.lookupOnDemand(key, len(prefix)-1, l.clock)
		if o == nil {
			continue // not in force for this identity
		}
		s.bs[n] = o.bucket
		s.bs[n].Key = key
		s.ids[n], s.scopes[n] = id, sc
		n++
	}
	return n, nil
}

// allowOne decides, on a OneTaker, a request that carries the identity of
// exactly one of its limit's scopes (an anonymous request to a limit keyed
// on IP and user, say): its key is built in an array on the stack and passed
// by value, so the decision needs no pooled scratch. It reports false,
// having done nothing, for any other request (two identities, none, one the
// limiter refuses, a key longer than MaxOneKey), which Allow then decides
// the general way.
//
// An address is first tried as it came, unchecked, against the keys the
// store holds: a held key was built from a checked identity, and an IP
// scope's keys are canonical dotted quads or IPv6 prefixes ending in "/64",
// so a held key whose address does not end in "/64" is a canonical dotted
// quad, which is what the check would have found (it is a tenth of a
// decision). A key the store does not hold yet is checked and built as
// usual.
func (l *Limiter) allowOne(e *limitEntry, req *Request, d *Decision) bool {
	j := -1
	for i, sc := range e.Scopes {
		if req.carries(sc) {
			if j >= 0 {
				return false
			}
			j = i
		}
	}
	if j < 0 {
		return false
	}
	sc, prefix := e.Scopes[j], e.prefixes[j]
	set := l.overrides.Load()
	if len(set.onDemand) > 0 && set.onDemand[e.Name] != 0 {
		return false // a tenant or global scope may apply too
	}
	var buf [MaxOneKey]byte
	if sc == ScopeIP && len(prefix)+len(req.IP) <= MaxOneKey && !strings.HasSuffix(req.IP, "/64") {
		key := append(append(buf[:0], prefix...), req.IP...)
		b := l.policy(set, e, key, sc, req.Premium)
		if r, ok := l.one.TakeOne(&l.rules, buf, len(key), *b, true); ok {
			l.decideOne(d, e, sc, req.IP, b, &r)
			return true
		}
	}
	if len(prefix)+req.maxIdentityLen(sc) > MaxOneKey {
		return false
	}
	key, id, ok := appendKey(buf[:0], prefix, sc, req)
	if !ok {
		return false
	}
	b := l.policy(set, e, key, sc, req.Premium)
	r, _ := l.one.TakeOne(&l.rules, buf, len(key), *b, false)
	l.decideOne(d, e, sc, id, b, &r)
	return true
}

// policy returns the policy of the bucket key of limit e's scope sc: the
// most specific override in set, else the tier's.
func (l *Limiter) policy(set *overrideSet, e *limitEntry, key []byte, sc Scope, premium bool) *Bucket {
	if len(set.list) > 0 { // without any override, no lookup
		if o := set.lookup(key, len(e.Name), len(e.Name)+1+len(sc), l.clock); o != nil {
			return &o.bucket
		}
	}
	if premium {
		return &e.premium
	}
	return &e.normal
}

// decideOne is decide for allowOne's one bucket, whose verdict is r.
func (l *Limiter) decideOne(d *Decision, e *limitEntry, sc Scope, id string, b *Bucket, r *Result) {
	if r.NewBan {
		l.obs.Banned()
	}
	l.decide(d, e, sc, id, b, r, !r.Allowed)
}

// limit finds a limit by name; a scan of the few limits beats hashing.
func (l *Limiter) limit(name string) *limitEntry {
	for _, e := range l.order {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// decide writes into d, the caller's zero result, the decision from the
// deciding bucket (scope, identity id, bucket b, verdict r): the one
// that denied the request when denied, else the tightest one. It counts it.
func (l *Limiter) decide(d *Decision, e *limitEntry, scope Scope, id string, b *Bucket, r *Result, denied bool) {
	// Field by field: d is the caller's zero result, and a composite
	// literal would be built aside and then copied in.
	d.Allowed = !denied
	d.Limit, d.Scope, d.Identity = e.Name, scope, id
	d.Capacity, d.Remaining, d.Strikes = r.Capacity, r.Remaining, r.Strikes
	d.Window = time.Duration(b.Window) * time.Microsecond
	d.Interval = time.Duration(b.Interval) * time.Microsecond
	d.Reset = time.Duration(r.ResetAfter) * time.Microsecond
	d.RetryAfter = time.Duration(r.RetryAfter) * time.Microsecond
	d.Shadow = !denied && r.Shadowed
	d.Unchecked = r.Unchecked
	if r.BannedUntil > 0 {
		d.BannedUntil = time.UnixMicro(r.BannedUntil)
	}
	outcome := "allowed"
	switch {
	case r.Banned && denied:
		outcome = "banned"
		// Nothing passes before the ban ends, whatever the bucket holds:
		// RateLimit-Reset must not promise tokens sooner than Retry-After.
		d.Remaining = 0
		d.Reset = max(d.Reset, d.RetryAfter)
	case denied:
		outcome = "limited"
	case d.Shadow:
		outcome = "shadow_limited"
	}
	l.obs.Decided(e.Name, string(d.Scope), outcome)
}

// scopeNeeds says what identity a request must carry for a limit with
// scopes sc: one of theirs.
func scopeNeeds(sc []Scope) string {
	need := make([]string, len(sc))
	for i, s := range sc {
		switch s {
		case ScopeIP:
			need[i] = "a client IP"
		case ScopeUser:
			need[i] = "a user"
		case ScopeTenant:
			need[i] = "a tenant"
		case ScopeUserTenant:
			need[i] = "a user and a tenant"
		default:
			need[i] = string(s)
		}
	}
	if len(need) == 2 && sc[0] == ScopeIP && sc[1] == ScopeUser {
		return "a client IP" // run and assistant: an address is always there
	}
	return strings.Join(need, " or ")
}

// parseBucketKey parses key as one bucket's, <limit>:<scope>:<identity>:
// a target of a whole limit or scope is refused with notOne, a format of
// key.
func (l *Limiter) parseBucketKey(key, notOne string) (Target, error) {
	if key == "" {
		return Target{}, core.Errorf(core.CodeInvalid, "a key is required: <limit>:<scope>:<identity>")
	}
	t, err := l.ParseTarget(key)
	if err != nil {
		return Target{}, err
	}
	if t.Identity == "" {
		return Target{}, core.Errorf(core.CodeInvalid, notOne, key)
	}
	return t, nil
}

// Reset clears one bucket ("run:ip:203.0.113.7"): its tokens, strikes and ban.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	t, err := l.parseBucketKey(key, "reset needs a full key <limit>:<scope>:<identity>, got %q")
	if err != nil {
		return err
	}
	k := t.String()
	l.bans.remove(k)
	if l.local != nil {
		_ = l.local.Reset(ctx, k)
	}
	cctx, cancel := l.backendContext(ctx)
	defer cancel()
	// Once more after the store's reset: a decision the store answered
	// "banned" before it may have been cached since the first removal.
	defer l.bans.remove(k)
	if err := l.store.Reset(cctx, k); err != nil {
		l.logStoreFailure(ctx, "cannot reset the bucket in the rate-limit store", k, err)
		return err
	}
	return nil
}

// The bounds of a manual ban's length (Ban): an operator's ban may be
// longer than an automatic one (MaxBan).
const (
	MinManualBan = time.Second
	MaxManualBan = 30 * 24 * time.Hour
)

// Ban bans one bucket key ("run:ip:203.0.113.7") for d, an operator's ban:
// the key's requests are refused (429, Retry-After) as those of a key banned
// by its own strikes, until the store's now + d, or until its own ban's end
// when that is later. Its tokens, strikes and ban level stay as they are;
// Reset lifts the ban. It returns the key as keyed (canonical: an IPv6
// address as its /64) and the ban's end. The key is validated as Reset's;
// a key of the global scope (every client's one bucket, never banned) and
// a d outside MinManualBan..MaxManualBan, or not whole seconds, are core.CodeInvalid.
func (l *Limiter) Ban(ctx context.Context, key string, d time.Duration) (string, time.Time, error) {
	t, err := l.parseBucketKey(key, "ban needs a full key <limit>:<scope>:<identity>, got %q")
	if err != nil {
		return "", time.Time{}, err
	}
	if t.Scope == ScopeGlobal {
		return "", time.Time{}, core.Errorf(core.CodeInvalid, "%s is the one bucket every client shares: it is never banned (set an override of %s:global instead)", t.String(), t.Limit)
	}
	if d < MinManualBan || d > MaxManualBan || d%time.Second != 0 {
		return "", time.Time{}, core.Errorf(core.CodeInvalid, "a ban lasts whole seconds from 1s to 720h (30 days), got %s", d)
	}
	k := t.String()
	cctx, cancel := l.backendContext(ctx)
	defer cancel()
	until, err := l.store.Ban(cctx, k, d)
	if err != nil {
		l.logStoreFailure(ctx, "cannot ban the bucket in the rate-limit store", k, err)
		return "", time.Time{}, err
	}
	// Not in the local store that decides while the remote one fails: a
	// reset through another daemon could not lift it there (automatic
	// bans are not kept there either). A ban cached before, shorter, is
	// asked of the store again (other daemons: the store's change message).
	l.bans.remove(k)
	return k, time.UnixMicro(until).UTC(), nil
}

// Snapshot is the limiter's state for operators: the busiest buckets, the
// penalized ones, and the overrides.
type Snapshot struct {
	Buckets       []BucketState
	Penalties     []BucketState
	PenalizedKeys int
	Overrides     []Override
	// Degraded says the backend is failing; the figures are the local store's.
	Degraded bool
}

// maxSnapshot bounds a snapshot's bucket lists.
const maxSnapshot = 1000

// Snapshot returns up to n of the most recently active buckets (n <= 0 or
// above 1000 means 1000), the penalized ones and the overrides in force.
func (l *Limiter) Snapshot(ctx context.Context, n int) (Snapshot, error) {
	if n <= 0 || n > maxSnapshot {
		n = maxSnapshot
	}
	out := Snapshot{Overrides: l.Overrides()}
	st := l.store
	if l.local != nil && l.backend.down.Load() {
		st, out.Degraded = l.local, true
	}
	cctx, cancel := l.backendContext(ctx)
	defer cancel()
	ss, err := st.Snapshot(cctx, &l.rules, n)
	if err != nil && l.parts.down.Load() > 0 {
		// A Cluster's master is failing, the one of the indexes: the local
		// store's figures, as in a whole outage.
		ss, err = l.local.Snapshot(ctx, &l.rules, n)
		out.Degraded = true
	}
	if err != nil {
		return out, err
	}
	out.Buckets, out.Penalties, out.PenalizedKeys = ss.Recent, ss.Penalized, ss.PenalizedKeys
	return out, nil
}

// PenalizedKeys counts the keys with strikes or a ban, for the
// refrakt_ratelimit_penalized_keys gauge.
func (l *Limiter) PenalizedKeys(ctx context.Context) (int, error) {
	ctx, cancel := l.backendContext(ctx)
	defer cancel()
	ss, err := l.store.Snapshot(ctx, &l.rules, 0)
	return ss.PenalizedKeys, err
}

// backendContext bounds a call to a remote store.
func (l *Limiter) backendContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if l.local == nil {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, l.cfg.BackendTimeout)
}

// sortOverrides orders overrides by target for stable listings.
func sortOverrides(os []Override) {
	sort.Slice(os, func(i, j int) bool { return os[i].Target < os[j].Target })
}
