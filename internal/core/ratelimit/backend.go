package ratelimit

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

// Backoff of the re-checks of a failed backend.
const (
	minRecheck = 100 * time.Millisecond
	maxRecheck = 2 * time.Second
)

// backendState tracks whether the remote store is failing. While it is, at
// most one request at a time re-checks it, after a doubling backoff, and
// every other request goes straight to the error policy without waiting.
type backendState struct {
	down atomic.Bool

	mu        sync.Mutex
	probing   bool
	nextProbe time.Time
	backoff   time.Duration
	lastLog   time.Time
	errors    int  // since the last log
	told      bool // this outage's failure was logged: its end is too
}

// skip reports whether a request must not try the backend now. The clock
// is read only while the backend is down.
func (b *backendState) skip(clock Clock) bool {
	if !b.down.Load() {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.probing || clock.Now().Before(b.nextProbe) {
		return true
	}
	b.probing = true
	return false
}

// partitions tracks the health of each server of a PartitionedStore
// apart: one failing sends only the requests for its keys to the error
// policy. Nothing here is read on a request's path while every server
// answers (down is 0).
type partitions struct {
	store PartitionedStore // nil: the store is one server, l.backend tracks it
	down  atomic.Int32     // how many of m are down

	mu sync.Mutex
	m  map[string]*backendState // by partition, kept once seen (their log throttles)
}

// state returns the state of partition p, made when absent.
func (ps *partitions) state(p string) *backendState {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	b := ps.m[p]
	if b == nil {
		b = &backendState{}
		ps.m[p] = b
	}
	return b
}

// downState returns the state of partition p when p is down, else nil.
func (ps *partitions) downState(p string) *backendState {
	ps.mu.Lock()
	b := ps.m[p]
	ps.mu.Unlock()
	if b == nil || !b.down.Load() {
		return nil
	}
	return b
}

// release ends a re-check taken by skip that will not be made.
func (b *backendState) release() {
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

// takeRemote asks the remote store within the backend timeout and applies
// the error policy when it fails or is known to be failing.
func (l *Limiter) takeRemote(ctx context.Context, bs []Bucket, rs []Result) error {
	if l.parts.store != nil {
		return l.takePartitioned(ctx, bs, rs)
	}
	if l.backend.skip(l.clock) {
		return l.onBackendError(ctx, bs, rs, nil)
	}
	err := l.takeBounded(ctx, bs, rs)
	if err == nil {
		l.backendOK(&l.backend, "")
		return nil
	}
	if ctx.Err() != nil {
		// The caller gave up; that says nothing about the backend.
		l.backend.release()
		return ctx.Err()
	}
	l.backendFailed("take", err, &l.backend, "")
	return l.onBackendError(ctx, bs, rs, err)
}

// takeBounded is the store's Take within the backend timeout.
func (l *Limiter) takeBounded(ctx context.Context, bs []Bucket, rs []Result) error {
	if l.bounded {
		return l.store.Take(ctx, &l.rules, bs, rs)
	}
	tctx, cancel := context.WithTimeout(ctx, l.cfg.BackendTimeout)
	defer cancel()
	return l.store.Take(tctx, &l.rules, bs, rs)
}

// takePartitioned is takeRemote on a store of several servers (a Redis
// Cluster's masters). The keys of a server known to be failing (its
// re-check aside) go to the error policy, and a failure marks down the
// servers of the keys that failed, not the others: the keys on the servers
// that answer stay exact, within a request of keys on both too
// (decideRest).
func (l *Limiter) takePartitioned(ctx context.Context, bs []Bucket, rs []Result) error {
	// Each key's server, asked of the store at most once a request, and
	// only while a server is failing or after a failure.
	var names [maxScopes]string
	named := false
	name := func(i int) string {
		if !named {
			for j := range bs {
				names[j] = l.parts.store.Partition(bs[j].Key)
			}
			named = true
		}
		return names[i]
	}
	// The down servers of this request's keys, whose re-check it makes.
	var probes [maxScopes]*backendState
	var probed [maxScopes]string
	n := 0
	release := func() {
		for _, b := range probes[:n] {
			b.release()
		}
	}
	if l.parts.down.Load() > 0 {
		// The keys of the down servers this request does not re-check.
		var away [maxScopes]bool
		var skipped [maxScopes]*backendState
		m := 0
		for i := range bs {
			p := name(i)
			b := l.parts.downState(p)
			if b == nil || slices.Contains(probes[:n], b) {
				continue
			}
			if slices.Contains(skipped[:m], b) {
				away[i] = true
				continue
			}
			if b.skip(l.clock) {
				skipped[m] = b
				m++
				away[i] = true
				continue
			}
			probes[n], probed[n] = b, p
			n++
		}
		if m > 0 {
			return l.takeAround(ctx, bs, rs, &away, names[:len(bs)], probes[:n], probed[:n])
		}
	}
	err := l.takeBounded(ctx, bs, rs)
	if err == nil {
		for i, b := range probes[:n] {
			l.backendOK(b, probed[i])
		}
		return nil
	}
	if ctx.Err() != nil {
		// The caller gave up; that says nothing about any server.
		release()
		return ctx.Err()
	}
	name(0) // fills names
	decided := l.settle(err, names[:len(bs)], probes[:n], probed[:n])
	return l.decideRest(ctx, bs, rs, &decided, err)
}

// takeAround decides a request some of whose keys (away) live on servers
// known to be failing whose re-check is not this request's: those go to
// the error policy, the others to the store (decideRest). names are the
// keys' servers; probes are the down servers, of the names probed, that
// the request re-checks.
func (l *Limiter) takeAround(ctx context.Context, bs []Bucket, rs []Result, away *[maxScopes]bool, names []string, probes []*backendState, probed []string) error {
	if l.cfg.OnBackendError == OnErrorDeny || !slices.Contains(away[:len(bs)], false) {
		// The policy refuses whatever the store says, or every key is
		// the policy's: the store is not asked, and spends nothing.
		for _, b := range probes {
			b.release()
		}
		return l.onBackendError(ctx, bs, rs, nil)
	}
	// Declared past the return above, which a key of a down server alone
	// takes: passed to the store, they live on the heap.
	var sub [maxScopes]Bucket
	var subRs [maxScopes]Result
	var subNames [maxScopes]string
	var at [maxScopes]int
	k := 0
	for i := range bs {
		if !away[i] {
			sub[k], subNames[k], at[k] = bs[i], names[i], i
			k++
		}
	}
	var decided [maxScopes]bool
	err := l.takeBounded(ctx, sub[:k], subRs[:k])
	if err == nil {
		for i, b := range probes {
			l.backendOK(b, probed[i])
		}
		for j := range k {
			decided[j] = true
		}
	} else {
		if ctx.Err() != nil {
			for _, b := range probes {
				b.release()
			}
			return ctx.Err()
		}
		decided = l.settle(err, subNames[:k], probes, probed)
	}
	var all [maxScopes]bool
	for j := range k {
		if decided[j] {
			all[at[j]] = true
			rs[at[j]] = subRs[j]
		}
	}
	return l.decideRest(ctx, bs, rs, &all, err)
}

// settle follows a failed Take of keys whose servers are names: it marks
// down the servers of the keys that failed and up those that answered,
// ends the re-checks the request made (probes, of the servers probed), and
// returns which keys the store decided anyway (PartialError.Decided),
// their results written.
//
// Which keys failed: those the store names; when it cannot tell (the
// request timed out as a whole), the keys of the servers already down
// among the request's, or else all of them. A request that never reached
// a server (NotSent) blames none.
func (l *Limiter) settle(err error, names []string, probes []*backendState, probed []string) (decided [maxScopes]bool) {
	var pe *PartialError
	partial := errors.As(err, &pe)
	if partial && pe.NotSent {
		for _, b := range probes {
			b.release()
		}
		return decided
	}
	var failed [maxScopes]bool
	if partial {
		for _, i := range pe.Failed {
			if i >= 0 && i < len(names) {
				failed[i] = true
			}
		}
		for _, i := range pe.Decided {
			if i >= 0 && i < len(names) {
				decided[i] = true
			}
		}
	} else {
		for i := range names {
			failed[i] = len(probes) == 0 || slices.Contains(probed, names[i])
		}
	}
	var settled [maxScopes]*backendState
	m := 0
	for i := range names {
		b := l.parts.state(names[i])
		if slices.Contains(settled[:m], b) {
			continue
		}
		settled[m] = b
		m++
		if failed[i] {
			l.backendFailed("take", err, b, names[i])
		} else if partial {
			l.backendOK(b, names[i]) // its server answered
		}
	}
	// A probe whose key moved to another server meanwhile (a failover)
	// is settled by neither.
	for _, b := range probes {
		if !slices.Contains(settled[:m], b) {
			b.release()
		}
	}
	return decided
}

// decideRest decides by the error policy the keys of bs the store did not
// decide (their server failed, or is known to be failing), the store
// having decided the others (decided) into rs as a request of their own;
// cause is the store's failure, if it had one. The request passes only
// when both parts admit it, as a request of keys on one server does:
//   - when the store's part refuses, the policy is not asked, so its keys
//     spend nothing (the local store keeps no token of a refused
//     request); they are answered unchecked, as the allow policy answers,
//     and the store's refusal decides;
//   - when the policy's part refuses (or fails the request: deny), the
//     tokens the store's part took are given back (GiveBack).
func (l *Limiter) decideRest(ctx context.Context, bs []Bucket, rs []Result, decided *[maxScopes]bool, cause error) error {
	k, refused := 0, false
	for i := range bs {
		if decided[i] {
			refused = refused || !rs[i].Allowed
		} else {
			k++
		}
	}
	switch {
	case k == len(bs):
		return l.onBackendError(ctx, bs, rs, cause)
	case k == 0:
		return nil
	case refused:
		for i := range bs {
			if !decided[i] {
				rs[i] = Result{Allowed: true, Unchecked: true, Capacity: bs[i].Capacity, Remaining: bs[i].Capacity}
			}
		}
		return nil
	}
	// Declared past the returns above, which a request of keys of one
	// server takes: passed to the stores, they live on the heap.
	var rest [maxScopes]Bucket
	var restRs [maxScopes]Result
	var at [maxScopes]int
	k = 0
	for i := range bs {
		if !decided[i] {
			rest[k], at[k] = bs[i], i
			k++
		}
	}
	err := l.onBackendError(ctx, rest[:k], restRs[:k], cause)
	admitted := err == nil
	if err == nil {
		for j, i := range at[:k] {
			rs[i] = restRs[j]
			admitted = admitted && rs[i].Allowed
		}
	}
	if admitted {
		return nil
	}
	var took [maxScopes]Bucket
	var tookRs [maxScopes]Result
	m := 0
	for i := range bs {
		if decided[i] && rs[i].Allowed && !rs[i].Shadowed {
			took[m], tookRs[m], at[m] = bs[i], rs[i], i
			m++
		}
	}
	if m > 0 {
		l.parts.store.GiveBack(ctx, took[:m], tookRs[:m])
		for j, i := range at[:m] {
			rs[i] = tookRs[j]
		}
	}
	return err
}

// expire forgets the down servers that no request has re-checked for a
// while: a master replaced by a failover, or moved away, is asked for no
// key again, and would keep the limiter degraded (and every request
// looking up its keys' servers) for good. A server still down and still
// needed is found down again by the next request for its keys.
//
// It returns the servers forgotten whose failure was logged, for a line
// that closes it.
func (ps *partitions) expire(now time.Time) []string {
	if ps.down.Load() == 0 {
		return nil
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var told []string
	for name, b := range ps.m {
		b.mu.Lock()
		if b.down.Load() && !b.probing && now.Sub(b.nextProbe) > 2*maxRecheck {
			b.down.Store(false)
			b.backoff = 0
			ps.down.Add(-1)
			if b.told {
				told = append(told, name)
			}
			b.told = false
		}
		b.mu.Unlock()
	}
	return told
}

// onBackendError decides by RATE_LIMIT_ON_BACKEND_ERROR.
func (l *Limiter) onBackendError(ctx context.Context, bs []Bucket, rs []Result, cause error) error {
	switch l.cfg.OnBackendError {
	case OnErrorAllow:
		for i := range bs {
			rs[i] = Result{Allowed: true, Unchecked: true, Capacity: bs[i].Capacity, Remaining: bs[i].Capacity}
		}
		return nil
	case OnErrorDeny:
		return core.Wrap(core.CodeUnavailable, cause, "rate limiter backend unavailable")
	}
	return l.local.Take(ctx, &l.rules, bs, rs)
}

// backendFailed marks b, the state of the backend or of its server part
// ("" for the whole backend), down, schedules the next re-check, counts the
// error and logs at most once per ErrorLogInterval.
func (l *Limiter) backendFailed(op string, err error, b *backendState, part string) {
	l.obs.BackendError(op)
	now := l.clock.Now()
	b.mu.Lock()
	b.probing = false
	switch {
	case !b.down.Load():
		b.backoff = minRecheck
		b.down.Store(true)
		if l.parts.store != nil {
			l.parts.down.Add(1)
		}
		b.nextProbe = now.Add(b.backoff)
	case !now.Before(b.nextProbe):
		// A re-check failed: the next one waits twice as long. Requests
		// that were in flight when the backend began failing fail before
		// the re-check is due, and change nothing.
		b.backoff = min(2*b.backoff, maxRecheck)
		b.nextProbe = now.Add(b.backoff)
	}
	b.errors++
	var logN int
	if b.lastLog.IsZero() || now.Sub(b.lastLog) >= l.cfg.ErrorLogInterval {
		logN, b.errors, b.lastLog = b.errors, 0, now
		b.told = true
	}
	// Read under the lock: another request may be failing at the same time.
	recheck := b.backoff
	b.mu.Unlock()
	if logN > 0 {
		attrs := []any{"op", op, "err", err, core.CauseAttr(err), "errors", logN,
			"policy", string(l.cfg.OnBackendError), "recheck", recheck.String()}
		if l.parts.store != nil {
			attrs = append(attrs, "server", part)
		}
		l.log.Warn("rate limiter backend failing", attrs...)
	}
}

// backendOK marks b up again after an outage.
func (l *Limiter) backendOK(b *backendState, part string) {
	if !b.down.Load() {
		return
	}
	b.mu.Lock()
	was := b.down.Swap(false)
	b.probing, b.backoff = false, 0
	if was && l.parts.store != nil {
		l.parts.down.Add(-1)
	}
	// An outage whose failure went unlogged (within ErrorLogInterval of
	// the last line) ends unlogged too: "answers again" alone would name
	// a backend no line said was failing.
	told := was && b.told
	if was {
		b.told = false
	}
	b.mu.Unlock()
	if told {
		if l.parts.store != nil {
			l.log.Info("rate limiter backend answers again", "server", part)
		} else {
			l.log.Info("rate limiter backend answers again")
		}
	}
}

// Degraded reports whether the remote store, or any of its servers, is
// failing right now.
func (l *Limiter) Degraded() bool { return l.backend.down.Load() || l.parts.down.Load() > 0 }

// banCache remembers bans of a remote store until they end, so a banned
// client costs no round trip.
//
// A reset or an override change drops cached bans (remove, clear) while
// decisions may be in flight whose answers the store gave before the
// change: such an answer must not be cached after the drop, or it would
// outlive the ban it no longer is (up to the ban's end). gen counts the
// drops; a decision reads it before it reads the overrides and asks the
// store, and add caches its
// ban only if no drop came in between.
type banCache struct {
	n   atomic.Int32
	gen atomic.Uint64
	mu  sync.RWMutex
	m   map[string]cachedBan
}

// generation is the number of drops so far, for add.
func (c *banCache) generation() uint64 { return c.gen.Load() }

// cachedBan is a ban as the store answered it: its end in the store's
// clock (until, what the answer says), and, in this daemon's clock, its end
// (end), when a request passes again (retry: later when the bucket still
// owes tokens then) and when the bucket is full again (full), all in Unix
// µs; with the capacity the key is banned at. The daemon's times are the
// store's answer's durations from the moment it was read, so a daemon
// whose clock is off the store's (Redis TIME) neither keeps a ban past its
// end nor drops it early. A request answered from the cache gets the
// headers the store's answer would carry. at is when it was cached, in
// this daemon's clock: a ban cached "later" than now is one from before
// the clock went back, whose times are off by the step, and is asked of
// the store again (which moves the key's times with its clock).
type cachedBan struct {
	until, end, retry, full, at int64
	capacity                    int
}

// banned returns the index of the bucket whose key is banned at now with the
// latest Retry-After, or -1; with it, that ban and now, in Unix µs.
func (c *banCache) banned(bs []Bucket, clock Clock) (int, cachedBan, int64) {
	if c.n.Load() == 0 {
		return -1, cachedBan{}, 0
	}
	now := micros(clock.Now())
	c.mu.RLock()
	defer c.mu.RUnlock()
	// Of several banned scopes, the one banned longest answers, as the
	// store's decision would: its Retry-After is when the request passes.
	found, ban := -1, cachedBan{}
	for i := range bs {
		if b, ok := c.m[string(bs[i].Key)]; ok && b.end > now && b.at <= now && (found < 0 || b.retry > ban.retry) {
			found, ban = i, b
		}
	}
	return found, ban, now
}

// add caches the ban of key that r, a banned result read at now (this
// daemon's clock, Unix µs), reports, unless bans were dropped since
// generation gen, when the store was asked.
func (c *banCache) add(key []byte, r *Result, gen uint64, now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	c.m[string(key)] = cachedBan{until: r.BannedUntil, end: now + (r.BannedUntil - r.Now), retry: now + r.RetryAfter,
		full: now + r.ResetAfter, at: now, capacity: r.Capacity}
	c.n.Store(int32(len(c.m)))
}

// remove drops the ban of key (a reset).
func (c *banCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	delete(c.m, key)
	c.n.Store(int32(len(c.m)))
}

// clear drops every ban (a change elsewhere: a reset, an override).
func (c *banCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	clear(c.m)
	c.n.Store(0)
}

// prune forgets ended bans, and those cached before the clock went back.
func (c *banCache) prune(now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, b := range c.m {
		if b.end <= now || b.at > now {
			delete(c.m, k)
		}
	}
	c.n.Store(int32(len(c.m)))
}
