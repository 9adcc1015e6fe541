package ratelimit

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

// SetOverride validates o, stamps it (canonical target, mode, creation time,
// expiry now+ttl when ttl > 0) and stores it; it applies in this process at
// once and in every other within OverrideRefresh.
func (l *Limiter) SetOverride(ctx context.Context, o Override, ttl time.Duration) (Override, error) {
	t, err := l.ParseTarget(o.Target)
	if err != nil {
		return Override{}, err
	}
	if err := o.checkBucket(); err != nil {
		return Override{}, err
	}
	if why := (Policy{Burst: o.Capacity, Rate: o.Capacity, Window: o.Window}).RefillShortfall(); why != "" {
		return Override{}, core.Errorf(core.CodeInvalid, "capacity %d per %s %s", o.Capacity, o.Window, why)
	}
	switch {
	case ttl < 0 || ttl > MaxOverrideTTL:
		return Override{}, core.Errorf(core.CodeInvalid, "ttl must be between 0 and %d days, got %s", MaxOverrideTTL/(24*time.Hour), ttl)
	case o.Mode == "":
		o.Mode = ModeEnforce
	case o.Mode != ModeEnforce && o.Mode != ModeShadow:
		return Override{}, core.Errorf(core.CodeInvalid, "mode must be %s or %s, got %q", ModeEnforce, ModeShadow, o.Mode)
	}
	// Milliseconds, as the Redis store keeps them: the override this
	// returns (and this daemon lists) is the one every other reader sees.
	now := l.clock.Now().UTC().Truncate(time.Millisecond)
	o.Target, o.CreatedAt, o.ExpiresAt = t.String(), now, time.Time{}
	if ttl > 0 {
		o.ExpiresAt = now.Add(ttl)
	}
	cctx, cancel := l.backendContext(ctx)
	defer cancel()
	if err := l.store.SetOverride(cctx, o); err != nil {
		l.logStoreFailure(ctx, "cannot set the override in the rate-limit store", o.Target, err)
		return Override{}, err
	}
	l.replaceOverride(o.Target, &o)
	return o, nil
}

// checkBucket refuses a capacity or window outside the bounds every bucket
// keeps (MaxCapacity, 1s to MaxWindow). A capacity per window a bucket
// cannot refill exactly is not among them: SetOverride refuses a new one,
// and one an earlier version stored is applied, refilled as its bucket can.
func (o *Override) checkBucket() error {
	switch {
	case o.Capacity <= 0 || o.Capacity > MaxCapacity:
		return core.Errorf(core.CodeInvalid, "capacity must be between 1 and %d, got %d", MaxCapacity, o.Capacity)
	case o.Window < time.Second || o.Window > MaxWindow:
		return core.Errorf(core.CodeInvalid, "window must be between 1s and %d days, got %s", MaxWindow/(24*time.Hour), o.Window)
	}
	return nil
}

// DeleteOverride removes the override of target.
func (l *Limiter) DeleteOverride(ctx context.Context, target string) error {
	t, err := l.ParseTarget(target)
	if err != nil {
		return err
	}
	cctx, cancel := l.backendContext(ctx)
	defer cancel()
	// An override past its end is gone for every reader, though it may
	// still be stored until a refresh deletes it: removing it answers not
	// found, as removing it twice does (and deletes it all the same).
	err = l.store.DeleteExpiredOverride(cctx, t.String(), l.clock.Now())
	if err == nil {
		err = l.store.DeleteOverride(cctx, t.String())
	}
	if err != nil {
		l.logStoreFailure(ctx, "cannot remove the override from the rate-limit store", t.String(), err)
		return err
	}
	l.replaceOverride(t.String(), nil)
	return nil
}

// Overrides lists the overrides in force (not expired), by target.
func (l *Limiter) Overrides() []Override {
	now := l.clock.Now()
	var out []Override
	for _, o := range l.overrides.Load().list {
		if !o.Expired(now) {
			out = append(out, o)
		}
	}
	return out
}

// Override returns the most specific override in force for a bucket key
// such as "run:ip:203.0.113.7", and whether there is one. For a key of a
// tenant or global scope that the limit applies only on demand, that is the
// override that puts the scope in force for the key (the key's, else the
// scope's): without one, the scope does not apply to it, whatever the
// limit's own override says.
func (l *Limiter) Override(key string) (Override, bool) {
	t, err := l.ParseTarget(key)
	if err != nil {
		return Override{}, false
	}
	k := []byte(t.String())
	scopeEnd := len(t.Limit)
	if t.Scope != "" {
		scopeEnd += 1 + len(t.Scope)
	}
	set := l.overrides.Load()
	var o *resolvedOverride
	if t.Scope != "" && !l.limit(t.Limit).hasScope(t.Scope) {
		o = set.lookupOnDemand(k, scopeEnd, l.clock)
	} else {
		o = set.lookup(k, len(t.Limit), scopeEnd, l.clock)
	}
	if o != nil {
		return o.Override, true
	}
	return Override{}, false
}

// TenantScopeTargeted reports whether an override (in force or expired but
// not yet dropped) targets the tenant scope of the named limit, or a
// tenant's key under it: then requests of the limit may have a tenant
// bucket, and their tenant matters. It costs a load and a length check
// while no override targets a tenant or global scope.
func (l *Limiter) TenantScopeTargeted(limit string) bool {
	set := l.overrides.Load()
	return len(set.onDemand) > 0 && set.onDemand[limit]&scopeBit(ScopeTenant) != 0
}

// replaceOverride swaps in a set with target's override replaced (o != nil)
// or removed, so this process sees its own change before any refresh.
func (l *Limiter) replaceOverride(target string, o *Override) {
	old := l.overrides.Load().list
	list := make([]Override, 0, len(old)+1)
	for _, x := range old {
		if x.Target != target {
			list = append(list, x)
		}
	}
	if o != nil {
		list = append(list, *o)
	}
	sortOverrides(list)
	l.overrides.Store(newOverrideSet(list))
	// A cached ban may no longer be one under the new override (a shadow
	// one is never denied): learned again from the store on the next
	// request, as when another daemon's change is announced.
	l.bans.clear()
}

// Loading every override is bounded by overridesLoadTimeout, not by
// Config.BackendTimeout (a decision's bound): tens of thousands of them take
// Redis more than 100 ms to send, and a load cut short would leave a
// starting daemon with none. A store that counts its changes
// (VersionedOverrides) is read whole only when its count moved, or every
// overridesFullReload in any case (an override written by hand, or by a
// build that did not count it).
const (
	overridesLoadTimeout = 10 * time.Second
	overridesFullReload  = 30 * time.Second
)

// overridesRefresh is what the last RefreshOverrides loaded.
type overridesRefresh struct {
	mu      sync.Mutex
	loaded  bool
	version int64
	at      time.Time
	// failing says the last refresh failed: logged once per spell.
	failing bool
}

// RefreshOverrides reloads the overrides from the store, and deletes the
// expired ones from it. On a store that counts its changes, it reads the
// count first and reloads only when it moved (or overridesFullReload has
// passed). On failure the overrides loaded before stay in force; the first
// failure of a spell is logged, and so is the recovery.
func (l *Limiter) RefreshOverrides(ctx context.Context) error {
	return l.refreshOverridesLogged(ctx, false)
}

// refreshOverridesLogged is RefreshOverrides; with force it reads every
// override whatever the change count says.
func (l *Limiter) refreshOverridesLogged(ctx context.Context, force bool) error {
	r := &l.refresh
	r.mu.Lock()
	defer r.mu.Unlock()
	err := l.refreshOverrides(ctx, force)
	switch {
	case err == nil && r.failing:
		r.failing = false
		l.log.Info("overrides read from the rate-limit store again", "overrides", len(l.overrides.Load().list))
	case err != nil && !r.failing && ctx.Err() == nil:
		r.failing = true
		l.log.Warn("cannot read the overrides from the rate-limit store; the ones loaded before stay in force",
			"overrides", len(l.overrides.Load().list), "err", err, core.CauseAttr(err))
	}
	return err
}

// refreshOverrides is RefreshOverrides under its lock.
func (l *Limiter) refreshOverrides(ctx context.Context, force bool) error {
	r := &l.refresh
	now := l.clock.Now()
	var version int64
	if vs, ok := l.store.(VersionedOverrides); ok {
		cctx, cancel := l.backendContext(ctx)
		v, err := vs.OverridesVersion(cctx)
		cancel()
		if err != nil {
			return err
		}
		if !force && r.loaded && v == r.version && now.Sub(r.at) < overridesFullReload && !now.Before(r.at) {
			return nil
		}
		version = v
	}
	cctx, cancel := context.WithTimeout(ctx, max(l.cfg.BackendTimeout, overridesLoadTimeout))
	defer cancel()
	list, err := l.store.Overrides(cctx)
	if err != nil {
		return err
	}
	kept := list[:0]
	for _, o := range list {
		if o.Expired(now) {
			// The value read may be old by now (a scan of many takes a
			// while): the store deletes only an override still expired.
			_ = l.store.DeleteExpiredOverride(cctx, o.Target, now)
			continue
		}
		// One written past SetOverride's checks (by hand, or by a build
		// that allowed it) is not applied: its bucket could not be computed.
		if o.checkBucket() != nil {
			continue
		}
		kept = append(kept, o)
	}
	sortOverrides(kept)
	old := l.overrides.Load().list
	l.overrides.Store(newOverrideSet(kept))
	// A cached ban may have been decided under the set just replaced (a
	// change whose message was lost, or decided between the message's drop
	// and this load): learned again from the store. Not when the set is
	// the same: the cache is what keeps this daemon from deciding, and so
	// from writing the index updates it still holds for a key, until a
	// reset's message has reached it (TestResetDropsPendingPenalty).
	if !slices.EqualFunc(old, kept, sameOverride) {
		l.bans.clear()
	}
	r.loaded, r.version, r.at = true, version, now
	return nil
}

// sameOverride reports whether a and b are the same override.
func sameOverride(a, b Override) bool {
	return a.Target == b.Target && a.Capacity == b.Capacity && a.Window == b.Window && a.Mode == b.Mode &&
		a.ExpiresAt.Equal(b.ExpiresAt) && a.Origin == b.Origin && a.CreatedAt.Equal(b.CreatedAt)
}

// maxWatchRetry is the longest wait before Run subscribes to the override
// changes again after a subscription failed.
const maxWatchRetry = 30 * time.Second

// localSweepEvery is how often Run drops the idle keys of the in-process
// stores.
const localSweepEvery = 10 * time.Second

// sweeper is an in-process store that can drop its idle keys at once.
type sweeper interface{ Sweep(r *Rules) }

// sweepIdle drops the idle keys of the in-process stores: an in-process
// store sweeps a shard only as it decides on it, so without this the keys
// of a flood stayed on every shard no later request landed on (after a
// flood from 100,000 addresses, all of them three idle minutes later, when
// the traffic went quiet or came from a few clients), and the keys of an
// outage in the local fallback store stayed until the next outage. The
// fallback store is swept while the remote store answers.
func (l *Limiter) sweepIdle() {
	if s, ok := l.store.(sweeper); ok {
		s.Sweep(&l.rules)
	}
	if s, ok := l.local.(sweeper); ok && !l.Degraded() {
		s.Sweep(&l.rules)
	}
}

// Run keeps the overrides fresh until ctx ends: it reloads them whenever the
// store reports a change and every OverrideRefresh in any case. It forgets
// ended bans, and all cached bans when the store reports a change (a key
// may have been reset elsewhere; live bans are learned again from the store
// on the next request). It drops the idle keys of the in-process stores
// every localSweepEvery (sweepIdle). It returns nil when ctx ends.
func (l *Limiter) Run(ctx context.Context) error {
	changed := make(chan struct{}, 1)
	// overridesChanged says a change message since the last reload named an
	// override (not only a key's reset): the next reload reads them all,
	// whatever the change count says (a build that does not count its
	// changes, or a hand-written override announced on the channel).
	var overridesChanged atomic.Bool
	watchDone := make(chan struct{})
	watchFailed := &core.LogThrottle{Logger: l.log, Msg: "cannot watch the overrides for changes; reloading them every " + l.cfg.OverrideRefresh.String() + " meanwhile", Every: l.cfg.ErrorLogInterval, Now: l.clock.Now}
	go func() {
		defer close(watchDone)
		wait := l.cfg.OverrideRefresh
		for ctx.Err() == nil {
			err := l.store.WatchOverrides(ctx, func(overrides bool) {
				if overrides {
					overridesChanged.Store(true)
				}
				select {
				case changed <- struct{}{}:
				default:
				}
			})
			if ctx.Err() != nil {
				return
			}
			// A lost subscription, or one refused: the ticker covers the
			// gap. A lost one (Redis restarting, unreachable) is tried
			// again every OverrideRefresh, so that it resumes as soon as
			// Redis answers; one refused (a user without the channel's
			// rights) ever later, up to maxWatchRetry: refused every
			// second, it cost Redis a connection a second for good. (Only
			// the subscription itself is refused, so a refusal never
			// follows one that lasted.)
			refused := core.ErrorCode(err) == core.CodeForbidden
			if !refused {
				wait = l.cfg.OverrideRefresh
			}
			watchFailed.Warn(ctx, slog.Any("err", err), core.CauseAttr(err), slog.Duration("retry_in", wait))
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			if refused {
				wait = min(2*wait, maxWatchRetry)
			}
		}
	}()
	defer func() { <-watchDone }()
	t := time.NewTicker(l.cfg.OverrideRefresh)
	defer t.Stop()
	if err := l.RefreshOverrides(ctx); err != nil && ctx.Err() == nil {
		l.obs.BackendError("overrides")
	}
	swept := l.clock.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			l.bans.clear()
		case <-t.C:
			now := l.clock.Now()
			l.bans.prune(micros(now))
			for _, p := range l.parts.expire(now) {
				l.log.Info("rate limiter backend no longer re-checked: no request needs it now", "server", p)
			}
			if now.Sub(swept) >= localSweepEvery || now.Before(swept) {
				swept = now
				l.sweepIdle()
			}
		}
		force := overridesChanged.Swap(false)
		if err := l.refreshOverridesLogged(ctx, force); err != nil && ctx.Err() == nil {
			if force {
				overridesChanged.Store(true) // still to be read whole
			}
			l.obs.BackendError("overrides")
		}
	}
}

// specificity is 0 for a limit's target, 1 for a limit and scope, 2 for a
// key.
func specificity(target string) int { return min(2, strings.Count(target, ":")) }

// TopOverrides returns at most n of os, those that matter most on an
// operator's screen, by target: the broadest first (a limit's, then a
// scope's, then single keys'; each covers more traffic than the next),
// then by target. os, in any order, is not modified.
func TopOverrides(os []Override, n int) []Override {
	out := slices.Clone(os)
	if len(out) > n {
		slices.SortFunc(out, func(a, b Override) int {
			return cmp.Or(cmp.Compare(specificity(a.Target), specificity(b.Target)), cmp.Compare(a.Target, b.Target))
		})
		out = out[:max(0, n)]
	}
	slices.SortFunc(out, func(a, b Override) int { return cmp.Compare(a.Target, b.Target) })
	return out
}

// Related reports whether an override of target o concerns target t: it is
// t's, covers t (o is t's limit, or its limit and scope) or lies under t (t
// is a limit, or a limit and scope, and o one of its scopes or keys), as
// `refrakt limits get TARGET` shows them. A key covers no other key, and
// none lies under it, though one may extend it: user a's key run:user:a is
// not user a:b's run:user:a:b.
func Related(o, t string) bool {
	return o == t || !IsKey(o) && strings.HasPrefix(t, o+":") || !IsKey(t) && strings.HasPrefix(o, t+":")
}

// RelatedOnDemand is Related for a target t of a scope that its limit
// applies only on demand (tenant, global; onDemand): the limit's own
// override does not cover t, since it does not put the scope in force.
func RelatedOnDemand(o, t string, onDemand bool) bool {
	if onDemand && !strings.Contains(o, ":") {
		return false
	}
	return Related(o, t)
}

// OverridesOf lists the overrides in force that are Related to target (in
// its stored form, CanonicalTarget), by target; for a target of a tenant
// or global scope, not the limit's own (RelatedOnDemand).
func (l *Limiter) OverridesOf(target string) []Override {
	target = CanonicalTarget(target)
	onDemand := false
	if t, err := l.ParseTarget(target); err == nil && t.Scope != "" {
		onDemand = !l.limit(t.Limit).hasScope(t.Scope)
	}
	var out []Override
	for _, o := range l.Overrides() {
		if RelatedOnDemand(o.Target, target, onDemand) {
			out = append(out, o)
		}
	}
	return out
}

// InForce returns those of os (read from a store) that this limiter would
// apply: neither expired nor out of bounds, by target. os is reused.
func (l *Limiter) InForce(os []Override) []Override {
	now := l.clock.Now()
	os = slices.DeleteFunc(os, func(o Override) bool { return o.Expired(now) || o.checkBucket() != nil })
	sortOverrides(os)
	return os
}

// logStoreFailure logs, at WARN with its cause, a change an operator asked
// for that the store failed to make: the caller is told "unavailable" only
// (its message keeps the backend's words out of API answers).
func (l *Limiter) logStoreFailure(ctx context.Context, msg, target string, err error) {
	if ctx.Err() != nil || core.ErrorCode(err) != core.CodeUnavailable {
		return // the caller went away, or a refusal the caller is told
	}
	l.log.Warn(msg, "target", target, "err", err, core.CauseAttr(err))
}
