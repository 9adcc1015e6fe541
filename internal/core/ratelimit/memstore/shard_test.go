package memstore

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// TestTableCollision checks the path of two keys with one hash, which real
// 64-bit hashes practically never take: both are kept and told apart; and
// that a probe passes over a cell of another tag without its key.
func TestTableCollision(t *testing.T) {
	tab := newTable(minCells)
	ka, kb, kc := []byte("rl-test:ip:192.0.2.1"), []byte("rl-test:ip:192.0.2.2"), []byte("rl-test:ip:192.0.2.3")
	a, b, c := newSlot(ka), newSlot(kb), newSlot(kc)
	tab.put(7, a)
	tab.put(7, b)
	const other = 7 | 1<<32 // the same cell, another tag
	if tag(other) == tag(7) {
		t.Fatal("the test's hashes share a tag")
	}
	tab.put(other, c)
	if tab.find(7, ka) != a || tab.find(7, kb) != b || tab.find(7, []byte("other")) != nil {
		t.Fatal("find does not tell the colliding keys apart")
	}
	if tab.find(other, kc) != c {
		t.Fatal("find misses a key behind cells of another tag")
	}
	// a's key under another tag: only the tags keep find from a's slot.
	if tab.find(other, ka) != nil {
		t.Fatal("find took a slot whose tag differs")
	}
	n := 0
	for range tab.slots() {
		n++
	}
	if n != 3 {
		t.Errorf("slots() yields %d, want 3", n)
	}

	// findLocked reads the clock once it has found a slot whose tag
	// matches, before it locks any; it locks a colliding slot before it
	// compares the key, lets go of a, whose tag matches but whose key
	// differs, and returns b locked.
	reads, lockedAtRead := 0, false
	clock := func() int64 {
		reads++
		lockedAtRead = lockedAtRead || a.state.Load() != unlocked || b.state.Load() != unlocked
		return 42
	}
	var at stamp
	if v, ok := tab.findLocked(7, kb, clock, &at); !ok || v != b {
		t.Fatal("findLocked does not find the second colliding key")
	}
	if reads != 1 || lockedAtRead || !at.done || at.now != 42 {
		t.Fatalf("findLocked read the clock %d times (want once, before locking; a lock held then: %v), stamp %+v", reads, lockedAtRead, at)
	}
	if a.state.Load() != unlocked || b.state.Load() != locked {
		t.Fatalf("after findLocked: a's lock %d (want unlocked), b's %d (want locked)", a.state.Load(), b.state.Load())
	}
	b.unlock()
	at = stamp{}
	if v, ok := tab.findLocked(7, []byte("other"), clock, &at); ok || v != nil || a.state.Load() != unlocked || b.state.Load() != unlocked {
		t.Fatal("findLocked of a missing key returned a slot or kept a lock")
	}
	if reads != 2 {
		t.Fatalf("the clock was read %d times in all, want 2", reads)
	}
	// A probe that meets an empty cell first finds nothing and leaves the
	// clock to acquire.
	at = stamp{}
	if _, ok := tab.findLocked(3, ka, clock, &at); ok || at.done || reads != 2 {
		t.Fatalf("findLocked past an empty cell: found %v, clock read %v", ok, at.done)
	}
	// A dead slot is not returned: the caller looks again in a newer table.
	a.lock()
	a.kill()
	if _, ok := tab.findLocked(7, ka, clock, &stamp{}); ok {
		t.Fatal("findLocked returned a dead slot")
	}
}

// TestTableGrows checks that a shard's table grows as keys arrive and every
// key stays findable, that inserting a held key adds nothing, that a reset
// removes just its key, and that a sweep shrinks the table back.
func TestTableGrows(t *testing.T) {
	s := New(ratelimit.SystemClock{})
	sh := &s.shards[3] // every key goes to this shard here
	keys := make([][]byte, 500)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "rl-test:ip:10.0.%d.%d", i/256, i%256)
		s.insert(sh, maphash.Bytes(s.seed, keys[i]), keys[i], false)
	}
	tab := sh.tab.Load()
	if sh.n != len(keys) || len(tab.cells)*4 < len(keys)*5 {
		t.Fatalf("%d slots in %d cells, want %d slots at a load factor <= 0.8", sh.n, len(tab.cells), len(keys))
	}
	for _, k := range keys {
		if v := tab.find(maphash.Bytes(s.seed, k), k); v == nil || v.key() != string(k) {
			t.Fatalf("key %s lost after growing", k)
		}
	}
	if v, fresh := s.insert(sh, maphash.Bytes(s.seed, keys[9]), keys[9], false); fresh || v.key() != string(keys[9]) || sh.n != len(keys) {
		t.Fatal("inserting a held key added a second slot")
	}
	sh.mu.Lock()
	gone := tab.find(maphash.Bytes(s.seed, keys[7]), keys[7])
	s.rebuild(sh, tab, len(tab.cells), func(v *slot) bool { return v == gone })
	sh.mu.Unlock()
	tab = sh.tab.Load()
	if tab.find(maphash.Bytes(s.seed, keys[7]), keys[7]) != nil || tab.find(maphash.Bytes(s.seed, keys[8]), keys[8]) == nil || sh.n != len(keys)-1 {
		t.Error("removing one key kept it or lost another")
	}
	r := ratelimit.DefaultConfig().Rules()
	sh.mu.Lock()
	s.sweep(sh, &r, s.micros()) // fresh slots are idle
	sh.mu.Unlock()
	if sh.n != 0 || len(sh.tab.Load().cells) != minCells {
		t.Errorf("after sweeping idle keys: %d slots in %d cells, want 0 in %d", sh.n, len(sh.tab.Load().cells), minCells)
	}
}

// TestSweepDuringDecisions runs decisions, resets and sweeps at once (for
// the race detector) and checks that none of it loses or invents a token: a
// bucket of 500 per hour, hammered by every worker (alone and together with
// a second scope) while its shard is swept, admits exactly 500.
func TestSweepDuringDecisions(t *testing.T) {
	s := New(ratelimit.SystemClock{})
	r := ratelimit.DefaultConfig().Rules()
	r.BanAfter = 0
	const workers, perWorker, limited = 4, 2000, 500
	hour := time.Hour.Microseconds()
	var wg sync.WaitGroup
	var admitted atomic.Int64
	stop := make(chan struct{})
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		for {
			select {
			case <-stop:
				return
			default:
				s.Sweep(&r)
				_ = s.Reset(context.Background(), "rl-test:ip:10.0.0.99")
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rs [2]ratelimit.Result
			for i := range perWorker {
				key := fmt.Appendf(nil, "rl-test:ip:10.0.0.%d", (w*perWorker+i)%100)
				bs := []ratelimit.Bucket{
					{Key: []byte("rl-test:tenant:limited"), Capacity: limited, Interval: hour / limited, Window: hour},
					{Key: key, Capacity: 1 << 30, Interval: 1, Window: 1e6},
				}
				if i%2 == 0 {
					bs = bs[:1]
				}
				if err := s.Take(context.Background(), &r, bs, rs[:len(bs)]); err != nil {
					t.Error(err)
					return
				}
				if len(bs) == 2 && !rs[1].Allowed {
					t.Errorf("a huge bucket denied: %+v", rs[1])
					return
				}
				if rs[0].Allowed {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-swept
	if got := admitted.Load(); got != limited {
		t.Errorf("the limited bucket admitted %d requests under sweeps, want exactly %d", got, limited)
	}
}

// TestSlotKeysAndPenalties checks where a slot keeps its key (inline up to
// inlineKey bytes, running on into a tail up to maxInline, in the extension
// beyond) and that penalties round-trip through the extension and leave it
// when they are over.
func TestSlotKeysAndPenalties(t *testing.T) {
	s := New(ratelimit.SystemClock{})
	pen := ratelimit.Cell{TAT: 7, Interval: 3, Capacity: 5, Seen: s.epoch + 2e6,
		Strikes: 2, BanLevel: 1, StrikeAt: 11, BannedUntil: 13, LastBan: 17}
	for _, n := range []int{1, inlineKey - 1, inlineKey, inlineKey + 1, inlineKey + 16, inlineKey + 17, inlineKey + 32, inlineKey + 33, maxInline, maxInline + 1, 200} {
		key := make([]byte, n)
		for i := range key {
			key[i] = byte('a' + i%26)
		}
		v := newSlot(key)
		if v.key() != string(key) {
			t.Fatalf("%d-byte key reads back as %q", n, v.key())
		}
		s.put(v, &pen)
		if got := s.cell(v); got != pen {
			t.Errorf("%d-byte key: cell %+v after put, want %+v", n, got, pen)
		}
		clear := pen
		clear.Strikes, clear.BanLevel, clear.StrikeAt, clear.BannedUntil, clear.LastBan = 0, 0, 0, 0, 0
		s.put(v, &clear)
		if got := s.cell(v); got != clear {
			t.Errorf("%d-byte key: cell %+v after the penalty ended, want %+v", n, got, clear)
		}
		if n <= maxInline && v.ext != nil {
			t.Errorf("%d-byte key keeps its extension after its penalty ended", n)
		}
		if v.key() != string(key) {
			t.Errorf("%d-byte key reads back as %q after its penalty ended", n, v.key())
		}
	}
}

// TestTakeTwoBucketsPastDecoys checks the two-bucket path's shortcut, which
// locks the slots whose tags match before it reads their keys: a slot of
// another key under the same tag (a decoy put where the key's probe starts)
// is let go and the key's own slot found, and two buckets whose probes both
// lead to one slot do not wait on it forever.
func TestTakeTwoBucketsPastDecoys(t *testing.T) {
	rules := &ratelimit.Rules{PenaltyFactor: 0.5}
	ka, kb := []byte("run:ip:192.0.2.1"), []byte("run:user:u1")
	policy := func(k []byte) ratelimit.Bucket {
		return ratelimit.Bucket{Key: k, Capacity: 10, Interval: 6e6, Window: 60e6}
	}
	take := func(s *Store) {
		t.Helper()
		rs := make([]ratelimit.Result, 2)
		done := make(chan error, 1)
		go func() { done <- s.Take(context.Background(), rules, []ratelimit.Bucket{policy(ka), policy(kb)}, rs) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Take of two buckets hangs")
		}
		if !rs[0].Allowed || !rs[1].Allowed || rs[0].Remaining != 9 || rs[1].Remaining != 9 {
			t.Fatalf("results %+v, want both allowed with 9 left", rs)
		}
	}
	held := func(s *Store, k []byte) *slot {
		h, sh := s.hash(k)
		return sh.tab.Load().find(h, k)
	}
	decoyAt := func(s *Store, k []byte, d *slot) {
		h, sh := s.hash(k)
		sh.mu.Lock()
		sh.tab.Load().put(h, d) // the key is new: its probe meets the decoy first
		sh.n++
		sh.mu.Unlock()
	}

	// One decoy for one key.
	s := New(ratelimit.SystemClock{})
	decoy := newSlot([]byte("decoy"))
	decoyAt(s, ka, decoy)
	take(s)
	if decoy.tat != 0 || decoy.state.Load() != unlocked {
		t.Errorf("the decoy was decided for (tat %d) or left locked (%d)", decoy.tat, decoy.state.Load())
	}
	for _, k := range [][]byte{ka, kb} {
		if v := held(s, k); v == nil || v.tat == 0 || v.state.Load() != unlocked {
			t.Errorf("%s: slot %v, want it decided for and unlocked", k, v)
		}
	}

	// One decoy for both keys.
	s = New(ratelimit.SystemClock{})
	decoy = newSlot([]byte("decoy"))
	decoyAt(s, ka, decoy)
	decoyAt(s, kb, decoy)
	take(s)
	if decoy.tat != 0 || decoy.state.Load() != unlocked {
		t.Errorf("the shared decoy was decided for (tat %d) or left locked (%d)", decoy.tat, decoy.state.Load())
	}
}
