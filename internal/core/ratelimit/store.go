package ratelimit

import (
	"cmp"
	"context"
	"strings"
	"time"
)

// Store keeps bucket state and overrides. The memory store serves one
// daemon; the Redis store is shared by every daemon and CLI on one Redis.
// Both pass the conformance suite in package storetest.
type Store interface {
	// Take applies one request to its buckets (one per scope, so no key
	// twice) with the given penalty rules and writes one Result per bucket
	// into rs (len(rs) >= len(bs)). The request is admitted only when every
	// bucket admits it; a denied request spends no token of any bucket, and
	// each bucket that denied it gets a strike, but a NoPenalty one. A
	// shadow bucket never denies.
	Take(ctx context.Context, rules *Rules, bs []Bucket, rs []Result) error
	// Reset forgets a bucket: its tokens, strikes and ban.
	Reset(ctx context.Context, key string) error
	// Ban bans one bucket key (an operator's ban) until the store's time
	// now + d, or until the end of the key's own ban when that is later,
	// and returns the end of its ban then (Unix µs, the store's clock).
	// Nothing else of the key changes: its tokens, strikes, ban level and
	// last ban stay as they are, so a manual ban does not lengthen the
	// client's next automatic one. A fresh key gets a state that is only the
	// ban. The store keeps the state at least until the ban ends. Decisions
	// refuse the key as they refuse any banned key (Cell.Apply).
	Ban(ctx context.Context, key string, d time.Duration) (until int64, err error)
	// Peek reads the stored state of one bucket key and the store's time
	// (Unix µs, from the clock its decisions use), changing nothing: no
	// token spent, no strike, no last-seen time, no index entry. found is
	// false when the store holds nothing for key (never seen, or forgotten
	// as idle): a fresh key, whose Cell is the zero one.
	Peek(ctx context.Context, key string) (c Cell, now int64, found bool, err error)
	// Snapshot returns up to n buckets, most recently active first, the
	// penalized or banned ones among the recently active, and how many keys
	// carry a penalty or ban in all.
	Snapshot(ctx context.Context, rules *Rules, n int) (StoreSnapshot, error)

	// Overrides lists the stored overrides, expired ones included.
	Overrides(ctx context.Context) ([]Override, error)
	// SetOverride stores o under o.Target, replacing any previous one.
	SetOverride(ctx context.Context, o Override) error
	// DeleteOverride removes the override of target; core.CodeNotFound when
	// there is none.
	DeleteOverride(ctx context.Context, target string) error
	// DeleteExpiredOverride removes the override of target only if the one
	// stored now is expired at now: an override set again meanwhile (a
	// script renewing it as it ends) stays. Nothing stored is no error.
	DeleteExpiredOverride(ctx context.Context, target string, now time.Time) error
	// WatchOverrides calls changed whenever any process changes an override
	// (overrides true) or resets a key (false), until ctx ends; it returns
	// ctx's error or a lost subscription's. When it cannot tell (the watch
	// has just started, after a gap), it says true.
	WatchOverrides(ctx context.Context, changed func(overrides bool)) error
}

// VersionedOverrides is a shared Store that counts the changes of its
// overrides, so that a limiter polling them reads one number while nothing
// changed instead of every override.
type VersionedOverrides interface {
	// OverridesVersion is a number that every SetOverride and DeleteOverride
	// through any store on the same backend changes; 0 before the first.
	OverridesVersion(ctx context.Context) (int64, error)
}

// PartitionedStore is a remote Store whose keys live on servers that fail
// apart, as the masters of a Redis Cluster do. The limiter then tracks the
// health of each server: one that fails sends to the error policy only its
// own keys, and the keys of the others go on being decided by the store,
// those of a request with keys on both included (the request passes only
// when both parts admit it).
type PartitionedStore interface {
	Store
	// Partitioned reports whether the store spans several servers now; when
	// it does not, the limiter tracks it as one.
	Partitioned() bool
	// Partition names the server that holds key ("" when it cannot tell).
	// The limiter asks it only while a server is failing, or after a
	// failure.
	Partition(key []byte) string
	// GiveBack returns the token that each bucket of bs whose result in rs
	// admitted a request (a shadow one aside) took from the store, and
	// counts it back in that result's Remaining: the error policy refused
	// the rest of the request, the keys of a failing server. Best effort,
	// bounded by the store's timeout.
	GiveBack(ctx context.Context, bs []Bucket, rs []Result)
}

// PartialError is an error of a PartitionedStore's Take that names the
// buckets whose servers failed (indexes into the request's buckets); the
// servers of the others answered. NotSent says the request never reached
// any server (it waited for a round trip until its deadline): no server is
// to blame, and none is known to answer.
type PartialError struct {
	Failed  []int
	NotSent bool
	// Decided are the buckets the store did decide, whose results it wrote
	// into rs. It decided them as a request of their own, all or nothing:
	// when one refused, the others spent nothing; when all admitted, their
	// tokens are spent, and the caller gives them back (GiveBack) if it
	// refuses the request otherwise. The buckets neither failed nor decided
	// were refused by a server that ran nothing (a slot moving).
	Decided []int
	Err     error
}

func (e *PartialError) Error() string { return e.Err.Error() }
func (e *PartialError) Unwrap() error { return e.Err }

// BoundedStore is a remote Store that bounds every Take itself, from its
// start to its answer, by TakeTimeout, whatever its client's sockets do. A
// Limiter whose remote store is bounded within Config.BackendTimeout wraps
// its decisions in no context timer of its own (on the Redis store, a
// decision that waits for a coalesced round trip then allocates none; the
// limiter's timer was about a tenth of a decision's client CPU there).
type BoundedStore interface {
	Store
	TakeTimeout() time.Duration
}

// OneTaker is an in-process Store that also decides a request of one bucket
// with everything passed by value: its key in an array, its policy in b
// (whose Key is not used). Nothing the limiter passes can then outlive the
// call, so a decision on it needs no pooled scratch memory: the limiter
// builds the key on its stack. The memory store implements it.
type OneTaker interface {
	// TakeOne is Take of the one bucket b with the key key[:n] (n at most
	// MaxOneKey); it cannot fail. With held it decides only for a key the
	// store holds already, and reports false, having done nothing, for any
	// other; without, it always decides and reports true.
	TakeOne(rules *Rules, key [MaxOneKey]byte, n int, b Bucket, held bool) (Result, bool)
}

// MaxOneKey is the longest key OneTaker.TakeOne takes: any IPv4 or IPv6 key
// of the built-in limits, and a user key of up to 40 bytes or so. A longer
// key goes through Take.
const MaxOneKey = 64

// Bucket is one key of one request with the policy that applies to it,
// already resolved for tier and overrides.
type Bucket struct {
	// Key is "<limit>:<scope>:<identity>". It is scratch memory of the
	// caller: a store copies it before keeping it.
	Key []byte
	// Capacity is the burst before penalties.
	Capacity int
	// Interval is the time one token takes to refill, in microseconds.
	Interval int64
	// Window is the policy's window in microseconds; a full window without a
	// 429 that finds the bucket full forgives all strikes.
	Window int64
	// Shadow buckets count but never deny.
	Shadow bool
	// NoPenalty buckets deny without striking or banning: the global
	// scope's one bucket, shared by every client, where a penalty earned by
	// one would refuse all of them.
	NoPenalty bool
}

// Rules are the penalty and ban settings in microseconds.
type Rules struct {
	PenaltyFactor float64
	DecayMicros   int64
	BanAfter      int // 0: never ban
	BanMicros     int64
	BanMaxMicros  int64
	RepeatMicros  int64
}

// Result is one bucket's verdict.
type Result struct {
	// Allowed says this bucket admits the request (a shadow bucket always does).
	Allowed bool
	// Shadowed says a shadow bucket would have denied.
	Shadowed bool
	// Banned says the key is banned (just now or before).
	Banned bool
	// NewBan says this decision started the ban.
	NewBan bool
	// Unchecked says no store decided: the backend failed and
	// RATE_LIMIT_ON_BACKEND_ERROR=allow let the request through, so there
	// are no figures to report.
	Unchecked bool
	// Capacity is the effective capacity after penalties.
	Capacity int
	// Remaining is the tokens left after this decision.
	Remaining int
	// ResetAfter is the time until the bucket is full again, in microseconds.
	ResetAfter int64
	// RetryAfter is the time until a request can pass, in microseconds (0
	// when allowed).
	RetryAfter int64
	// Strikes is the key's strikes after this decision.
	Strikes int
	// BannedUntil is the end of the key's ban in Unix microseconds, 0 for none.
	BannedUntil int64
	// Now is the store's time of the decision in Unix microseconds.
	Now int64
}

// StoreSnapshot is what a store knows about its busiest keys: up to n of
// the most recently active, and up to n of those with strikes or a ban in
// ByPenalty's order; and how many keys have strikes or a ban.
type StoreSnapshot struct {
	Recent        []BucketState
	Penalized     []BucketState
	PenalizedKeys int
}

// ByPenalty orders penalized keys as snapshots list them, the ones an
// operator looks for first: the banned (the latest to end first), then by
// strikes, then the most recently seen, then by key.
func ByPenalty(a, b BucketState) int {
	return cmp.Or(cmp.Compare(banEnd(b), banEnd(a)), cmp.Compare(b.Strikes, a.Strikes),
		b.LastSeen.Compare(a.LastSeen), cmp.Compare(a.Key, b.Key))
}

// banEnd is the end of b's ban in Unix µs, 0 for none.
func banEnd(b BucketState) int64 {
	if b.BannedUntil.IsZero() {
		return 0
	}
	return b.BannedUntil.UnixMicro()
}

// BucketState is one bucket as a snapshot shows it.
type BucketState struct {
	Key         string    `json:"key"`
	Capacity    int       `json:"capacity"`
	Remaining   int       `json:"remaining"`
	Strikes     int       `json:"strikes"`
	BannedUntil time.Time `json:"banned_until,omitzero"`
	LastSeen    time.Time `json:"last_seen"`
}

// LimitScope returns the limit and the scope of b's key
// ("run:ip:203.0.113.7": "run", "ip").
func (b BucketState) LimitScope() (limit, scope string) {
	limit, rest, _ := strings.Cut(b.Key, ":")
	scope, _, _ = strings.Cut(rest, ":")
	return limit, scope
}

// Cell is the whole stored state of one key, in Unix microseconds. The memory
// store keeps it (compactly); the Redis script keeps the same fields packed
// in one string per key and follows Cell.Apply line by line.
type Cell struct {
	TAT         int64 // GCRA theoretical arrival time
	Interval    int64 // the emission interval TAT was computed with
	Capacity    int   // the capacity before penalties (burst) of the last decision's policy
	Strikes     int
	StrikeAt    int64 // when the last strike was given (its decay is computed from it)
	BannedUntil int64
	BanLevel    int   // 0 for a first ban, +1 per repeat within the repeat window of the previous ban's end
	LastBan     int64 // when the last ban started
	Seen        int64
}

// Idle reports whether c is indistinguishable from a fresh key at now, so a
// store may forget it.
func (c *Cell) Idle(r *Rules, now int64) bool {
	return c.TAT <= now && c.BannedUntil <= now &&
		(c.Strikes == 0 || c.StrikeAt+int64(c.Strikes)*r.DecayMicros <= now) &&
		(c.LastBan == 0 || c.BannedUntil+r.RepeatMicros <= now)
}

// Ban bans c at now (Unix µs) until now + d, or until its own ban's end when
// that is later: c's times are first moved as a decision at now moves them
// (a clock that stepped back, see rebase), so that the end is in the
// clock the next decision reads; nothing else changes. A fresh cell (the
// zero one) becomes a cell that is only the ban, last seen at now.
func (c *Cell) Ban(now, d int64) {
	if c.Seen > now {
		c.rebase(now - c.Seen)
		c.Seen = now
	}
	if c.Seen == 0 {
		c.Seen = now
	}
	c.BannedUntil = max(c.BannedUntil, now+d)
}

// asOf is c as a decision at now would find it: its times moved by a
// clock that stepped back since its last decision (rebase), or c itself.
// The snapshot's views go through it, so that after a step back a key with
// one strike does not show sixty (the step read as time to decay back).
func (c *Cell) asOf(now int64) *Cell {
	if c.Seen <= now {
		return c
	}
	moved := *c
	moved.rebase(now - moved.Seen)
	moved.Seen = now
	return &moved
}

// StrikesAt returns c's strikes at now, those decayed since taken off.
func (c *Cell) StrikesAt(r *Rules, now int64) int {
	c = c.asOf(now)
	if c.Strikes > 0 && r.DecayMicros > 0 {
		return max(0, c.Strikes-int((now-c.StrikeAt)/r.DecayMicros))
	}
	return c.Strikes
}

// Penalized reports whether a snapshot at now shows c with strikes or a ban
// (State's Strikes > 0 or BannedUntil set), without building the state.
func (c *Cell) Penalized(r *Rules, now int64) bool {
	c = c.asOf(now)
	return c.BannedUntil > now || c.StrikesAt(r, now) > 0
}

// Shown reports whether a snapshot at now shows c at all: a key a store
// could forget is left out once its last strike would have decayed.
func (c *Cell) Shown(r *Rules, now int64) bool {
	return !c.Idle(r, now) || c.Seen+r.DecayMicros >= now
}

// State returns c as a snapshot shows it at now: the capacity and tokens
// left that the key's next request would be decided with, if it comes
// under the policy (tier, override) of the last one. A banned key shows
// what a banned request is answered: no token left. Strikes are those left
// at now; the forgiveness that the next request itself may bring (a whole
// window since the last strike, the bucket full) is not anticipated: the
// window is not stored.
func (c *Cell) State(key string, r *Rules, now int64) BucketState {
	seen := c.Seen
	c = c.asOf(now)
	st := BucketState{Key: key, Strikes: c.StrikesAt(r, now), LastSeen: time.UnixMicro(seen).UTC()}
	if c.BannedUntil > now {
		st.Capacity = c.banCapacity(r)
		st.BannedUntil = time.UnixMicro(c.BannedUntil).UTC()
		return st
	}
	st.Capacity = Penalized(c.Capacity, r.PenaltyFactor, st.Strikes)
	st.Remaining = st.Capacity
	if c.TAT > now && c.Interval > 0 {
		st.Remaining = max(0, int((int64(st.Capacity)*c.Interval-(c.TAT-now))/c.Interval))
	}
	return st
}
