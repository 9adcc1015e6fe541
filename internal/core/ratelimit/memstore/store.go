// Package memstore is the in-process ratelimit.Store: one daemon's buckets in
// a sharded hash table that decisions read without taking any shared lock.
// Each key's slot carries its own small lock, so two cores deciding for
// different keys touch no common memory that either writes: the table is
// only written when a key is added, and when a shard's idle keys (full
// bucket, no strikes, no ban) are swept, so memory follows the active keys.
//
// Memory: a key costs its cell in the table (16 bytes a cell, at a load
// factor of at most 0.8, and 0.2 to 0.4 right after a sweep shrinks the
// table: 20 to 80 bytes a key; the tags make long probes cheap) and its slot
// with the key in it: 64 bytes for a key of up to 24 bytes, such as
// "run:ip:203.0.113.7" (about 93 bytes in all; BenchmarkBytesPerKey
// measures it), 80, 96 or 128 for keys of up to 40, 56 or 88 bytes. Longer
// keys, and penalties and bans while a key has them, live in a separate
// struct.
package memstore

import (
	"cmp"
	"context"
	"hash/maphash"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

var (
	_ ratelimit.Store    = (*Store)(nil)
	_ ratelimit.OneTaker = (*Store)(nil)
)

// The Store is one 64-byte block (see Store.walks).
var _ [0]byte = [unsafe.Sizeof(Store{}) - 64]byte{}

const (
	shardCount = 256 // a power of two
	// sweepEvery is how often a shard drops its idle keys.
	sweepEvery = 10 * time.Second
	// minCells is the size of an empty shard's table.
	minCells = 8
)

// seenBack is how far before the store's start slot.seen counts from, in
// µs: half of its range (68 years each way), so that a time the clock
// stepped back to is kept as it is, for Cell.Apply to see the step once
// (a time before the start was not stored, and every later decision took
// the step again).
const seenBack = int64(1<<31) * 1e6

// Store is the memory store. The zero value is not usable; call New.
type Store struct {
	micros func() int64 // Unix µs from the store's clock, by its cheapest path
	seed   maphash.Seed
	epoch  int64              // Unix µs that slot.seen counts from: seenBack before New
	shards *[shardCount]shard // its own allocation, so shards start on a cache line

	// walks is Snapshot's, in an allocation of its own: the Store stays one
	// 64-byte block, its fields that every decision reads on one line.
	walks *shareWalks

	ovMu      sync.Mutex
	overrides map[string]ratelimit.Override
	watchers  map[*func(bool)]struct{}
}

// shard holds the keys whose hash falls in it, in an open-addressing table
// (linear probing on the key's 64-bit hash) that readers load atomically.
// mu serializes the writers of the table: inserts, sweeps, resets and the
// rebuilds that grow or shrink it. A table is never changed once replaced,
// and a cell, once set, keeps its slot for the table's life; a removed slot
// is marked dead, so a decision that found it in an old table looks again.
type shard struct {
	tab       atomic.Pointer[table]
	nextSweep atomic.Int64
	mu        sync.Mutex
	n         int      // slots in tab (under mu)
	_         [32]byte // keep shards on separate cache lines
}

// table is one shard's index: each cell points at a slot and holds 32 bits
// of its key's hash (the tag, written before the pointer), so that a probe
// passes over other keys without touching their slots (which other cores
// are writing).
type table struct {
	mask  uint64
	cells []cell
}

// cell is one place of a table. The tag sits next to its pointer so that a
// decision's probe reads one random line of the table, not one of the
// pointers and one of the tags (12 bytes a cell become 16: about 8 more a
// key, for 4-7% off a decision at 10k keys in parallel).
type cell struct {
	v   atomic.Pointer[slot]
	tag atomic.Uint32
}

func newTable(size int) *table {
	return &table{mask: uint64(size - 1), cells: make([]cell, size)}
}

func tag(h uint64) uint32 { return uint32(h >> 24) }

// slot is a key's state in one cache line (64 bytes, so the allocator puts
// it on a line of its own): the slot's lock, the GCRA pair, the capacity
// last applied, the last-seen second and the key itself, inline when it
// fits (every IPv4 key of a short limit name does). A key of up to
// maxInline bytes runs on into a tail allocated with the slot (80, 96 or
// 128 bytes in all); a longer one, and penalties, live in an extension that
// most keys never have. A decision thus touches the lines of one key's own
// allocation only.
type slot struct {
	// state is the lock: unlocked, locked, or dead (removed from its shard).
	state atomic.Uint32
	klen  uint32
	tat   int64
	iv    int64
	// ext holds a key longer than maxInline (set when the slot is made,
	// never changed) and penalties (under the slot's lock; for a key held in
	// the slot, ext is dropped when its penalties are over).
	ext  *slotExt
	seen uint32 // seconds since Store.epoch
	cap  int32
	inl  [inlineKey]byte
}

// inlineKey is the longest key kept inside a plain slot; maxInline the
// longest kept in the slot's own allocation, running on into a tail.
const (
	inlineKey = 24
	maxInline = inlineKey + 64
)

// A plain slot is exactly one cache line.
var _ [0]byte = [unsafe.Sizeof(slot{}) - 64]byte{}

// tailed is a slot allocated with room after it: a key longer than
// inlineKey runs on from inl into the blank field, in the same allocation
// (reached only through unsafe.Slice in newSlot and unsafe.String in key,
// hence no name).
type tailed[T any] struct {
	slot
	_ T
}

type slotExt struct {
	key string  // a key longer than maxInline
	pen penalty // zero when the key has none
}

const (
	unlocked uint32 = iota
	locked
	dead
)

// newSlot returns a slot holding key, in the smallest allocation that fits.
func newSlot(key []byte) *slot {
	var v *slot
	switch n := len(key); {
	case n <= inlineKey:
		v = new(slot)
	case n <= inlineKey+16:
		v = &new(tailed[[16]byte]).slot
	case n <= inlineKey+32:
		v = &new(tailed[[32]byte]).slot
	case n <= maxInline:
		v = &new(tailed[[64]byte]).slot
	default:
		v = &slot{ext: &slotExt{key: string(key)}}
	}
	v.klen = uint32(len(key))
	if len(key) <= maxInline {
		copy(unsafe.Slice(&v.inl[0], len(key)), key)
	}
	return v
}

// key returns the slot's key. It is never changed once the slot is made,
// so it is read without the lock.
func (v *slot) key() string {
	if v.klen <= maxInline {
		return unsafe.String(&v.inl[0], v.klen)
	}
	return v.ext.key
}

// lock takes the slot's lock and reports false, without it, for a dead slot.
// Critical sections are a few dozen nanoseconds: spin, then yield.
func (v *slot) lock() bool {
	// Straight to the swap: reading the state first would fetch the line
	// shared, and the swap fetch it again to own it.
	if v.state.CompareAndSwap(unlocked, locked) {
		return true
	}
	for i := 0; ; i++ {
		switch v.state.Load() {
		case unlocked:
			if v.state.CompareAndSwap(unlocked, locked) {
				return true
			}
		case dead:
			return false
		}
		if i >= 16 {
			runtime.Gosched()
		}
	}
}

func (v *slot) unlock() { v.state.Store(unlocked) }

// kill marks a locked slot dead: its lock is never taken again.
func (v *slot) kill() { v.state.Store(dead) }

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
		micros:    ratelimit.MicrosOf(clock),
		seed:      maphash.MakeSeed(),
		epoch:     clock.Now().UnixMicro() - seenBack,
		overrides: map[string]ratelimit.Override{},
		watchers:  map[*func(bool)]struct{}{},
		shards:    new([shardCount]shard),
		walks:     new(shareWalks),
	}
	for i := range s.shards {
		s.shards[i].tab.Store(newTable(minCells))
	}
	return s
}

// hash returns key's hash and shard.
func (s *Store) hash(key []byte) (uint64, *shard) {
	h := maphash.Bytes(s.seed, key)
	return h, &s.shards[h>>56]
}

// find returns key's slot in t, nil when the key is not there.
func (t *table) find(h uint64, key []byte) *slot {
	for v, i := t.tagged(h, h&t.mask); v != nil; v, i = t.tagged(h, (i+1)&t.mask) {
		if v.key() == string(key) {
			return v
		}
	}
	return nil
}

// tagged returns the first slot from cell i on whose tag is h's, and its
// cell; nil at the first empty cell. It reads no slot: every probe of the
// table walks with it.
func (t *table) tagged(h, i uint64) (*slot, uint64) {
	tg := tag(h)
	for ; ; i = (i + 1) & t.mask {
		if v := t.cells[i].v.Load(); v == nil || t.cells[i].tag.Load() == tg {
			return v, i
		}
	}
}

// put stores v in t, which has room; the caller holds the shard's lock.
func (t *table) put(h uint64, v *slot) {
	i := h & t.mask
	for t.cells[i].v.Load() != nil {
		i = (i + 1) & t.mask
	}
	t.cells[i].tag.Store(tag(h))
	t.cells[i].v.Store(v)
}

// slots iterates over the table's slots.
func (t *table) slots() func(yield func(*slot) bool) {
	return func(yield func(*slot) bool) {
		for i := range t.cells {
			if v := t.cells[i].v.Load(); v != nil && !yield(v) {
				return
			}
		}
	}
}

// insert returns key's slot, adding a fresh one when the key is new, and
// whether it added it. With lockNew, a slot it adds is returned locked (it
// is published locked). A held key is found without the shard's lock.
func (s *Store) insert(sh *shard, h uint64, key []byte, lockNew bool) (*slot, bool) {
	if v := sh.tab.Load().find(h, key); v != nil {
		return v, false
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := sh.tab.Load()
	if v := t.find(h, key); v != nil {
		return v, false
	}
	v := newSlot(key)
	if lockNew {
		v.state.Store(locked)
	}
	if (sh.n+1)*5 > len(t.cells)*4 { // load factor above 0.8: grow
		t = s.rebuild(sh, t, len(t.cells)*2, nil)
	}
	t.put(h, v)
	sh.n++
	return v, true
}

// rebuild publishes a table of size cells holding t's slots except those
// drop reports; the caller holds the shard's lock.
func (s *Store) rebuild(sh *shard, t *table, size int, drop func(*slot) bool) *table {
	nt := newTable(size)
	n := 0
	for v := range t.slots() {
		if drop != nil && drop(v) {
			continue
		}
		nt.put(maphash.String(s.seed, v.key()), v)
		n++
	}
	sh.n = n
	sh.tab.Store(nt)
	return nt
}

// tableSize is the table size for n slots: a load factor of at most 0.4
// after a rebuild, so the table grows again only after it doubles.
func tableSize(n int) int {
	size := minCells
	for size*2 < n*5 {
		size *= 2
	}
	return size
}

// acquire returns key's slot, locked (inserting it when it is new), and the
// store's time, read once the slot is found and before it is locked.
//
// That order is x/time/rate's too (its limiter, then time.Now, then its
// mutex), and on this VM it decides whether two cores deciding for the same
// keys run at full speed: the lock's fetch of the slot's line, to own it,
// starts as soon as the slot's address is known and overlaps the clock read
// instead of following it. In the phases where the VM's transfers between
// cores are slow, the goal's benchmark shape (10k keys, two goroutines on
// all of them) took 100-110 ns a decision with the clock read first and
// 37-45 with it between (throwaway probes, 2026-11-25 22:30 UTC); reading
// the slot in between, even one field, brought it back to 87-94.
//
// With held it only looks, and reports false when the key is not held (or
// its slot is being removed); else it reports true.
func (s *Store) acquire(sh *shard, h uint64, key []byte, held bool) (*slot, int64, bool) {
	var at stamp
	for {
		if v, ok := sh.tab.Load().findLocked(h, key, s.micros, &at); ok {
			return v, at.now, true
		}
		if held {
			return nil, 0, false
		}
		at.read(s.micros)
		v, fresh := s.insert(sh, h, key, true)
		if fresh || v.lock() {
			return v, at.now, true
		}
		sh.settle()
	}
}

// stamp is a time read at most once: by findLocked when it finds its first
// candidate, else by acquire before it inserts.
type stamp struct {
	now  int64
	done bool
}

func (st *stamp) read(clock func() int64) {
	if !st.done {
		st.now, st.done = clock(), true
	}
}

// findLocked returns key's slot in t, locked, and true; false when the key
// is not there or its slot died. It reads the clock into at when it finds a
// slot whose tag matches, before locking it (see acquire). That slot is
// locked before its key is compared, and unlocked again if the key differs
// (one time in 2³² a probe): comparing first would fetch the slot's line
// shared, and the lock then fetch it again to own it. The caller holds no
// slot lock.
func (t *table) findLocked(h uint64, key []byte, clock func() int64, at *stamp) (*slot, bool) {
	for v, i := t.tagged(h, h&t.mask); v != nil; v, i = t.tagged(h, (i+1)&t.mask) {
		at.read(clock)
		if !v.lock() {
			return nil, false
		}
		if v.key() == string(key) {
			return v, true
		}
		v.unlock()
	}
	return nil, false
}

// settle waits until the sweep or Reset that killed a slot of the shard has
// published the table without it: both kill and rebuild under the shard's
// lock. A decision that found a dead slot waits here rather than spinning
// on it until the new table appears.
func (sh *shard) settle() {
	sh.mu.Lock()
	//lint:ignore SA2001 an empty critical section: waiting for the lock is the point
	sh.mu.Unlock()
}

func (s *Store) cell(v *slot) ratelimit.Cell {
	var c ratelimit.Cell
	s.load(v, &c)
	return c
}

// load writes v's state into c, which is zero, field by field: a Cell
// returned by value is built aside and copied with wide loads of narrow
// stores, which stall the CPU on the decision's path.
func (s *Store) load(v *slot, c *ratelimit.Cell) {
	c.TAT, c.Interval, c.Capacity, c.Seen = v.tat, v.iv, int(v.cap), s.epoch+int64(v.seen)*1e6
	if e := v.ext; e != nil {
		p := &e.pen
		c.Strikes, c.BanLevel = int(p.strikes), int(p.banLevel)
		c.StrikeAt, c.BannedUntil, c.LastBan = p.strikeAt, p.bannedUntil, p.lastBan
	}
}

// put writes c into v; the caller holds v's lock.
func (s *Store) put(v *slot, c *ratelimit.Cell) {
	v.tat, v.iv, v.cap = c.TAT, c.Interval, int32(c.Capacity)
	if d := c.Seen - s.epoch; d > 0 {
		v.seen = uint32(d / 1e6)
	}
	if c.Strikes == 0 && c.BannedUntil == 0 && c.LastBan == 0 {
		// Written only when there was a penalty: most decisions leave the
		// extension (and its line) alone.
		if e := v.ext; e != nil && v.klen <= maxInline {
			v.ext = nil
		} else if e != nil && e.pen != (penalty{}) {
			e.pen = penalty{}
		}
		return
	}
	if v.ext == nil {
		v.ext = new(slotExt)
	}
	v.ext.pen = penalty{strikes: int32(c.Strikes), banLevel: int32(c.BanLevel), strikeAt: c.StrikeAt, bannedUntil: c.BannedUntil, lastBan: c.LastBan}
}

// Take implements ratelimit.Store. The slots a request touches are locked
// (in address order, so two requests never deadlock) while it is decided,
// so a denied request spends nothing anywhere.
func (s *Store) Take(_ context.Context, r *ratelimit.Rules, bs []ratelimit.Bucket, rs []ratelimit.Result) error {
	if len(bs) == 1 {
		s.takeOne(r, &bs[0], &rs[0], false)
		return nil
	}
	var cells [4]ratelimit.Cell
	var slots, order [4]*slot
	var hs [4]uint64
	var shs [4]*shard
	if len(bs) > len(slots) {
		return core.Errorf(core.CodeInvalid, "memstore: %d buckets in one request", len(bs))
	}
	// A key twice would be locked twice: the second lock would wait on the
	// first forever.
	for i := 1; i < len(bs); i++ {
		for j := range i {
			if string(bs[i].Key) == string(bs[j].Key) {
				return core.Errorf(core.CodeInvalid, "memstore: bucket %q twice in one request", bs[i].Key)
			}
		}
	}
	for i := range bs {
		hs[i], shs[i] = s.hash(bs[i].Key)
	}
	var at stamp
	for !s.lockAll(bs, hs[:len(bs)], shs[:len(bs)], slots[:len(bs)], order[:len(bs)], &at) {
		for _, sh := range shs[:len(bs)] {
			sh.settle()
		}
	}
	now := at.now
	denied := false
	for i := range bs {
		s.load(slots[i], &cells[i])
		cells[i].Apply(&bs[i], r, now, &rs[i])
		denied = denied || !rs[i].Allowed
	}
	for i := range bs {
		// A denied request spends no token: only the buckets that denied it
		// are written (their strikes).
		if !denied || !rs[i].Allowed {
			s.put(slots[i], &cells[i])
		}
	}
	for _, v := range order[:len(bs)] {
		v.unlock()
	}
	for _, sh := range shs[:len(bs)] {
		s.maybeSweep(sh, r, now)
	}
	return nil
}

// TakeOne implements ratelimit.OneTaker.
func (s *Store) TakeOne(r *ratelimit.Rules, key [ratelimit.MaxOneKey]byte, n int, b ratelimit.Bucket, held bool) (res ratelimit.Result, ok bool) {
	b.Key = key[:n]
	ok = s.takeOne(r, &b, &res, held)
	return res, ok
}

// takeOne decides the request of the one bucket b into res. With held it
// decides only for a key the store holds, and reports false for another.
func (s *Store) takeOne(r *ratelimit.Rules, b *ratelimit.Bucket, res *ratelimit.Result, held bool) bool {
	h, sh := s.hash(b.Key)
	v, now, ok := s.acquire(sh, h, b.Key, held)
	if !ok {
		return false
	}
	var c ratelimit.Cell
	s.load(v, &c)
	c.Apply(b, r, now, res)
	s.put(v, &c)
	v.unlock()
	s.maybeSweep(sh, r, now)
	return true
}

// lockAll finds (or adds) the slots of bs (hashes hs, shards shs) and locks
// them in address order, reading the clock into at once they are found and
// before they are locked (see acquire). A held key's slot is first taken by
// its tag alone, without reading the slot, and its key checked once it is
// locked; a tag that turns out to be another key's (one probe in 2³²), or
// two buckets taking one slot, sends it back to finding each slot by its
// key. It reports false, holding nothing, when one of them died meanwhile.
func (s *Store) lockAll(bs []ratelimit.Bucket, hs []uint64, shs []*shard, slots, order []*slot, at *stamp) bool {
	for byKey := false; ; byKey = true {
		for i := range bs {
			var v *slot
			if !byKey {
				t := shs[i].tab.Load()
				v, _ = t.tagged(hs[i], hs[i]&t.mask)
			}
			if v == nil {
				v, _ = s.insert(shs[i], hs[i], bs[i].Key, false)
			}
			slots[i], order[i] = v, v
		}
		slices.SortFunc(order, func(a, b *slot) int {
			return cmp.Compare(uintptr(unsafe.Pointer(a)), uintptr(unsafe.Pointer(b)))
		})
		if !byKey && repeats(order) {
			continue // two buckets took one slot by its tag: locking it twice would wait forever
		}
		at.read(s.micros)
		for j, v := range order {
			if !v.lock() {
				for _, u := range order[:j] {
					u.unlock()
				}
				return false
			}
		}
		if byKey || keysAre(slots, bs) {
			return true
		}
		for _, v := range order {
			v.unlock()
		}
	}
}

// repeats reports whether sorted holds a slot twice.
func repeats(sorted []*slot) bool {
	for j := 1; j < len(sorted); j++ {
		if sorted[j] == sorted[j-1] {
			return true
		}
	}
	return false
}

// keysAre reports whether each slot holds its bucket's key.
func keysAre(slots []*slot, bs []ratelimit.Bucket) bool {
	for i, v := range slots {
		if v.key() != string(bs[i].Key) {
			return false
		}
	}
	return true
}

// maybeSweep drops a shard's idle keys every sweepEvery. The caller holds
// no slot lock. A shard another goroutine is writing is left for later.
func (s *Store) maybeSweep(sh *shard, r *ratelimit.Rules, now int64) {
	if now < sh.nextSweep.Load() || !sh.mu.TryLock() {
		return
	}
	if next := sh.nextSweep.Load(); next != 0 && now >= next {
		s.sweep(sh, r, now)
	}
	sh.nextSweep.Store(now + sweepEvery.Microseconds())
	sh.mu.Unlock()
}

// sweep removes the shard's idle slots; the caller holds the shard's lock.
func (s *Store) sweep(sh *shard, r *ratelimit.Rules, now int64) {
	t := sh.tab.Load()
	idle := 0
	for v := range t.slots() {
		if v.lock() {
			if c := s.cell(v); c.Idle(r, now) {
				v.kill()
				idle++
				continue
			}
			v.unlock()
		}
	}
	if idle > 0 {
		s.rebuild(sh, t, tableSize(sh.n-idle), func(v *slot) bool { return v.state.Load() == dead })
	}
}

// Len returns the number of keys held, idle ones not yet swept included.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.n
		sh.mu.Unlock()
	}
	return n
}

// Sweep drops every idle key now, whatever the shards' schedules.
func (s *Store) Sweep(r *ratelimit.Rules) {
	now := s.micros()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		s.sweep(sh, r, now)
		sh.nextSweep.Store(now + sweepEvery.Microseconds())
		sh.mu.Unlock()
	}
}

// Reset implements ratelimit.Store.
func (s *Store) Reset(_ context.Context, key string) error {
	h, sh := s.hash([]byte(key))
	sh.mu.Lock()
	t := sh.tab.Load()
	if v := t.find(h, []byte(key)); v != nil && v.lock() {
		v.kill()
		s.rebuild(sh, t, len(t.cells), func(u *slot) bool { return u == v })
	}
	sh.mu.Unlock()
	s.walks.forget()
	s.notify(false)
	return nil
}

// Ban implements ratelimit.Store: the key's slot (added when the key is
// new) is changed under its lock, as a decision changes it.
func (s *Store) Ban(_ context.Context, key string, d time.Duration) (int64, error) {
	k := []byte(key)
	h, sh := s.hash(k)
	v, now, _ := s.acquire(sh, h, k, false)
	var c ratelimit.Cell
	s.load(v, &c)
	if v.seen == 0 {
		c.Seen = 0 // never decided: a fresh key, last seen at its ban
	}
	c.Ban(now, d.Microseconds())
	s.put(v, &c)
	v.unlock()
	s.walks.forget()
	return c.BannedUntil, nil
}

// Peek implements ratelimit.Store: the key's slot, if held, is read under
// its lock and left as it was; a key not held is not added, and no sweep
// runs.
func (s *Store) Peek(_ context.Context, key string) (ratelimit.Cell, int64, bool, error) {
	k := []byte(key)
	h, sh := s.hash(k)
	v, now, ok := s.acquire(sh, h, k, true)
	if !ok {
		return ratelimit.Cell{}, s.micros(), false, nil
	}
	c := s.cell(v)
	v.unlock()
	return c, now, true, nil
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
	s.notify(true)
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
	s.notify(true)
	return nil
}

func (s *Store) notify(overrides bool) {
	s.ovMu.Lock()
	defer s.ovMu.Unlock()
	for f := range s.watchers {
		(*f)(overrides)
	}
}

// DeleteExpiredOverride implements ratelimit.Store.
func (s *Store) DeleteExpiredOverride(_ context.Context, target string, now time.Time) error {
	s.ovMu.Lock()
	o, ok := s.overrides[target]
	ok = ok && o.Expired(now)
	if ok {
		delete(s.overrides, target)
	}
	s.ovMu.Unlock()
	if ok {
		s.notify(true)
	}
	return nil
}

// WatchOverrides implements ratelimit.Store.
func (s *Store) WatchOverrides(ctx context.Context, changed func(overrides bool)) error {
	s.ovMu.Lock()
	s.watchers[&changed] = struct{}{}
	s.ovMu.Unlock()
	<-ctx.Done()
	s.ovMu.Lock()
	delete(s.watchers, &changed)
	s.ovMu.Unlock()
	return ctx.Err()
}
