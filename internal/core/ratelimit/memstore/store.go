// Package memstore is the in-process ratelimit.Store: one daemon's buckets in
// a sharded, lock-striped map, so that cores deciding for different keys
// rarely meet on a mutex. Idle keys (full bucket, no strikes, no ban) are
// evicted as the shards are swept, so memory follows the active keys.
//
// Memory: a key costs its map entry (hash and pointer, about 20 bytes with
// the map's slack), a 48-byte slot and the key's bytes; about 90 bytes for a
// key like "run:ip:203.0.113.7" (BenchmarkBytesPerKey measures it). Penalties and bans live in a separate struct only while a key
// has them.
package memstore

import (
	"cmp"
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

var _ ratelimit.Store = (*Store)(nil)

const (
	shardCount = 256 // a power of two
	// sweepEvery is how often a shard drops its idle keys.
	sweepEvery = 10 * time.Second
)

// Store is the memory store. The zero value is not usable; call New.
type Store struct {
	clock  ratelimit.Clock
	seed   maphash.Seed
	epoch  int64 // Unix µs that slot.seen counts from
	shards [shardCount]shard

	ovMu      sync.Mutex
	overrides map[string]ratelimit.Override
	watchers  map[*func()]struct{}
}

// shard holds the keys whose hash falls in it. Keys are found by their
// 64-bit hash (computed once per decision, also choosing the shard), and
// checked against the key the slot keeps; a key whose hash another key
// already holds goes to spill, which in practice stays nil.
type shard struct {
	mu        sync.Mutex
	m         map[uint64]*slot
	spill     map[string]*slot
	nextSweep int64
	_         [32]byte // keep shards on separate cache lines
}

// slot is a key's state, compact: the key, the GCRA pair, the capacity last
// applied, the last-seen second, and penalties only when there are any.
type slot struct {
	key  string
	tat  int64
	iv   int64
	pen  *penalty
	seen uint32 // seconds since Store.epoch
	cap  int32
}

type penalty struct {
	strikes     int32
	banLevel    int32
	strikeAt    int64
	bannedUntil int64
	lastBan     int64
}

// New returns an empty memory store reading time from clock.
func New(clock ratelimit.Clock) *Store {
	s := &Store{
		clock:     clock,
		seed:      maphash.MakeSeed(),
		epoch:     clock.Now().UnixMicro(),
		overrides: map[string]ratelimit.Override{},
		watchers:  map[*func()]struct{}{},
	}
	for i := range s.shards {
		s.shards[i].m = map[uint64]*slot{}
	}
	return s
}

// hash returns key's hash and shard.
func (s *Store) hash(key []byte) (uint64, *shard) {
	h := maphash.Bytes(s.seed, key)
	return h, &s.shards[h>>56]
}

// get returns key's slot, nil when the key is new.
func (sh *shard) get(h uint64, key []byte) *slot {
	if v := sh.m[h]; v != nil && v.key == string(key) {
		return v
	}
	if sh.spill != nil {
		return sh.spill[string(key)]
	}
	return nil
}

func (sh *shard) insert(h uint64, v *slot) {
	if sh.m[h] == nil {
		sh.m[h] = v
		return
	}
	if sh.spill == nil {
		sh.spill = map[string]*slot{}
	}
	sh.spill[v.key] = v
}

func (sh *shard) remove(h uint64, key string) {
	if v := sh.m[h]; v != nil && v.key == key {
		delete(sh.m, h)
		return
	}
	delete(sh.spill, key)
	if len(sh.spill) == 0 {
		sh.spill = nil
	}
}

func (s *Store) cell(v *slot) ratelimit.Cell {
	c := ratelimit.Cell{TAT: v.tat, Interval: v.iv, Capacity: int(v.cap), Seen: s.epoch + int64(v.seen)*1e6}
	if p := v.pen; p != nil {
		c.Strikes, c.BanLevel = int(p.strikes), int(p.banLevel)
		c.StrikeAt, c.BannedUntil, c.LastBan = p.strikeAt, p.bannedUntil, p.lastBan
	}
	return c
}

func (s *Store) put(sh *shard, h uint64, key []byte, v *slot, c *ratelimit.Cell) {
	if v == nil {
		v = &slot{key: string(key)}
		sh.insert(h, v)
	}
	v.tat, v.iv, v.cap = c.TAT, c.Interval, int32(c.Capacity)
	if d := c.Seen - s.epoch; d > 0 {
		v.seen = uint32(d / 1e6)
	}
	if c.Strikes == 0 && c.BannedUntil == 0 && c.LastBan == 0 {
		v.pen = nil
		return
	}
	if v.pen == nil {
		v.pen = new(penalty)
	}
	*v.pen = penalty{strikes: int32(c.Strikes), banLevel: int32(c.BanLevel), strikeAt: c.StrikeAt, bannedUntil: c.BannedUntil, lastBan: c.LastBan}
}

// Take implements ratelimit.Store. All shards a request touches are locked
// (in index order, so two requests never deadlock) while it is decided, so a
// denied request spends nothing anywhere.
func (s *Store) Take(_ context.Context, r *ratelimit.Rules, bs []ratelimit.Bucket, rs []ratelimit.Result) error {
	now := s.clock.Now().UnixMicro()
	if len(bs) == 1 {
		h, sh := s.hash(bs[0].Key)
		sh.mu.Lock()
		s.maybeSweep(sh, r, now)
		v := sh.get(h, bs[0].Key)
		var c ratelimit.Cell
		if v != nil {
			c = s.cell(v)
		}
		c, rs[0] = ratelimit.Evaluate(c, &bs[0], r, now)
		s.put(sh, h, bs[0].Key, v, &c)
		sh.mu.Unlock()
		return nil
	}

	var idx [8]int
	var hs [8]uint64
	var cells [8]ratelimit.Cell
	var slots [8]*slot
	if len(bs) > len(idx)/2 {
		return core.Errorf(core.CodeInvalid, "memstore: %d buckets in one request", len(bs))
	}
	locks := idx[len(bs):len(bs)]
	for i := range bs {
		hs[i] = maphash.Bytes(s.seed, bs[i].Key)
		idx[i] = int(hs[i] >> 56)
		if !slices.Contains(locks, idx[i]) {
			locks = append(locks, idx[i])
		}
	}
	slices.Sort(locks)
	for _, i := range locks {
		s.shards[i].mu.Lock()
		s.maybeSweep(&s.shards[i], r, now)
	}
	denied := false
	for i := range bs {
		slots[i] = s.shards[idx[i]].get(hs[i], bs[i].Key)
		if slots[i] != nil {
			cells[i] = s.cell(slots[i])
		}
		cells[i], rs[i] = ratelimit.Evaluate(cells[i], &bs[i], r, now)
		denied = denied || !rs[i].Allowed
	}
	for i := range bs {
		// A denied request spends no token: only the buckets that denied it
		// are written (their strikes).
		if !denied || !rs[i].Allowed {
			s.put(&s.shards[idx[i]], hs[i], bs[i].Key, slots[i], &cells[i])
		}
	}
	for j := len(locks) - 1; j >= 0; j-- {
		s.shards[locks[j]].mu.Unlock()
	}
	return nil
}

// maybeSweep drops a shard's idle keys every sweepEvery; the caller holds
// the shard's lock. Sweeping one shard at a time keeps each pause short.
func (s *Store) maybeSweep(sh *shard, r *ratelimit.Rules, now int64) {
	if now < sh.nextSweep {
		return
	}
	if sh.nextSweep != 0 {
		for h, v := range sh.m {
			if c := s.cell(v); c.Idle(r, now) {
				delete(sh.m, h)
			}
		}
		for k, v := range sh.spill {
			if c := s.cell(v); c.Idle(r, now) {
				delete(sh.spill, k)
			}
		}
	}
	sh.nextSweep = now + sweepEvery.Microseconds()
}

// Len returns the number of keys held, idle ones not yet swept included.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m) + len(sh.spill)
		sh.mu.Unlock()
	}
	return n
}

// Sweep drops every idle key now, whatever the shards' schedules.
func (s *Store) Sweep(r *ratelimit.Rules) {
	now := s.clock.Now().UnixMicro()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.nextSweep = 1
		s.maybeSweep(sh, r, now)
		sh.mu.Unlock()
	}
}

// slots iterates over every slot of the shard; the caller holds its lock.
func (sh *shard) slots() func(yield func(*slot) bool) {
	return func(yield func(*slot) bool) {
		for _, v := range sh.m {
			if !yield(v) {
				return
			}
		}
		for _, v := range sh.spill {
			if !yield(v) {
				return
			}
		}
	}
}

// Reset implements ratelimit.Store.
func (s *Store) Reset(_ context.Context, key string) error {
	h, sh := s.hash([]byte(key))
	sh.mu.Lock()
	sh.remove(h, key)
	sh.mu.Unlock()
	s.notify()
	return nil
}

// Snapshot implements ratelimit.Store. It visits every key, one shard lock at
// a time: meant for an operator's poll, not for every request.
func (s *Store) Snapshot(_ context.Context, r *ratelimit.Rules, n int) (ratelimit.StoreSnapshot, error) {
	now := s.clock.Now().UnixMicro()
	var all, pen []ratelimit.BucketState
	count := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for v := range sh.slots() {
			c := s.cell(v)
			if c.Idle(r, now) && c.Seen+r.DecayMicros < now {
				continue
			}
			st := c.State(v.key, r, now)
			if n > 0 {
				all = append(all, st)
			}
			if st.Strikes > 0 || !st.BannedUntil.IsZero() {
				count++
				if n > 0 {
					pen = append(pen, st)
				}
			}
		}
		sh.mu.Unlock()
	}
	byRecent := func(a, b ratelimit.BucketState) int {
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	}
	slices.SortFunc(all, byRecent)
	slices.SortFunc(pen, byRecent)
	return ratelimit.StoreSnapshot{Recent: all[:min(n, len(all))], Penalized: pen[:min(n, len(pen))], PenalizedKeys: count}, nil
}

// Overrides implements ratelimit.Store.
func (s *Store) Overrides(context.Context) ([]ratelimit.Override, error) {
	s.ovMu.Lock()
	defer s.ovMu.Unlock()
	out := make([]ratelimit.Override, 0, len(s.overrides))
	for _, o := range s.overrides {
		out = append(out, o)
	}
	return out, nil
}

// SetOverride implements ratelimit.Store.
func (s *Store) SetOverride(_ context.Context, o ratelimit.Override) error {
	s.ovMu.Lock()
	s.overrides[o.Target] = o
	s.ovMu.Unlock()
	s.notify()
	return nil
}

// DeleteOverride implements ratelimit.Store.
func (s *Store) DeleteOverride(_ context.Context, target string) error {
	s.ovMu.Lock()
	_, ok := s.overrides[target]
	delete(s.overrides, target)
	s.ovMu.Unlock()
	if !ok {
		return core.Errorf(core.CodeNotFound, "no override for %q", target)
	}
	s.notify()
	return nil
}

func (s *Store) notify() {
	s.ovMu.Lock()
	defer s.ovMu.Unlock()
	for f := range s.watchers {
		(*f)()
	}
}

// WatchOverrides implements ratelimit.Store.
func (s *Store) WatchOverrides(ctx context.Context, changed func()) error {
	s.ovMu.Lock()
	s.watchers[&changed] = struct{}{}
	s.ovMu.Unlock()
	<-ctx.Done()
	s.ovMu.Lock()
	delete(s.watchers, &changed)
	s.ovMu.Unlock()
	return ctx.Err()
}
