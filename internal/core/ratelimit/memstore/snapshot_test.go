package memstore

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/fakeclock"
)

var snapRules = &ratelimit.Rules{PenaltyFactor: 0.5, DecayMicros: 60e6, BanAfter: 3, BanMicros: 30e6, BanMaxMicros: 3600e6, RepeatMicros: 3600e6}

// mixedStore returns a store of n keys seen over two minutes (so that many
// share a second, the lists' unit): most live for an hour, some with
// strikes, some banned, some idle (full again), some with keys too long for
// their slot.
func mixedStore(t testing.TB, n int, seed uint64) (*Store, *fakeclock.Clock) {
	t.Helper()
	clock := fakeclock.New(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	s := New(clock)
	rng := rand.New(rand.NewPCG(seed, 1))
	bs := make([]ratelimit.Bucket, 1)
	rs := make([]ratelimit.Result, 1)
	take := func(key string, b ratelimit.Bucket, times int) {
		b.Key = []byte(key)
		bs[0] = b
		for range times {
			if err := s.Take(context.Background(), snapRules, bs, rs); err != nil {
				t.Fatal(err)
			}
		}
	}
	hour := ratelimit.Bucket{Capacity: 1, Interval: 3600e6, Window: 3600e6}
	second := ratelimit.Bucket{Capacity: 5, Interval: 1e6, Window: 5e6}
	for i := range n {
		clock.Advance(2 * time.Minute / time.Duration(n))
		key := fmt.Sprintf("tenant-meta:ip:10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		switch k := rng.IntN(20); {
		case k == 0: // strikes
			take(key, hour, 2)
		case k == 1: // banned
			take(key, hour, 4)
		case k < 4: // idle soon
			take(key, second, 1)
		case k == 4: // a long key
			take(key+":"+fmt.Sprint(make([]int, 40)), hour, 1)
		default:
			take(key, hour, 1)
		}
	}
	clock.Advance(20 * time.Second) // some bans end, the short buckets fill up
	return s, clock
}

// referenceSnapshot is Snapshot by the book: every shown key's state, fully
// sorted, cut at n.
func referenceSnapshot(s *Store, r *ratelimit.Rules, n int) ratelimit.StoreSnapshot {
	now := s.micros()
	var all, pen []ratelimit.BucketState
	count := 0
	for i := range s.shards {
		for v := range s.shards[i].tab.Load().slots() {
			c := s.cell(v)
			if c.Idle(r, now) && c.Seen+r.DecayMicros < now {
				continue
			}
			st := c.State(v.key(), r, now)
			all = append(all, st)
			if st.Strikes > 0 || !st.BannedUntil.IsZero() {
				count++
				pen = append(pen, st)
			}
		}
	}
	byRecent := func(a, b ratelimit.BucketState) int {
		return cmp.Or(b.LastSeen.Compare(a.LastSeen), cmp.Compare(a.Key, b.Key))
	}
	slices.SortFunc(all, byRecent)
	slices.SortFunc(pen, ratelimit.ByPenalty)
	cut := func(bs []ratelimit.BucketState) []ratelimit.BucketState {
		if n <= 0 || len(bs) == 0 {
			return nil
		}
		return bs[:min(n, len(bs))]
	}
	return ratelimit.StoreSnapshot{Recent: cut(all), Penalized: cut(pen), PenalizedKeys: count}
}

// TestSnapshotMatchesFullSort checks the bounded walk against a full sort
// of every key, for lists shorter and longer than the store.
func TestSnapshotMatchesFullSort(t *testing.T) {
	for _, keys := range []int{0, 1, 300, 20_000} {
		s, _ := mixedStore(t, keys, uint64(keys))
		for _, n := range []int{0, 1, 2, 7, 50, 1000, 30_000} {
			t.Run(fmt.Sprintf("keys=%d/n=%d", keys, n), func(t *testing.T) {
				got, err := s.Snapshot(context.Background(), snapRules, n)
				if err != nil {
					t.Fatal(err)
				}
				want := referenceSnapshot(s, snapRules, n)
				if diff := gocmp.Diff(want, got); diff != "" {
					t.Errorf("Snapshot (-want +got):\n%s", diff)
				}
			})
		}
	}
	s, _ := mixedStore(t, 20_000, 7)
	got, _ := s.Snapshot(context.Background(), snapRules, 1000)
	if len(got.Recent) != 1000 || len(got.Penalized) == 0 || got.PenalizedKeys <= len(got.Penalized)/2 {
		t.Errorf("the mixed store is not mixed: %d recent, %d penalized of %d", len(got.Recent), len(got.Penalized), got.PenalizedKeys)
	}
}

// TestSnapshotAllocatesNothingPerKey checks that a walk's allocations and
// bytes do not grow with the keys it visits: besides a fixed few, it
// allocates one copy of each key it returns, and nothing else.
func TestSnapshotAllocatesNothingPerKey(t *testing.T) {
	ctx := context.Background()
	const n = 50
	for _, keys := range []int{2_000, 100_000} {
		t.Run(fmt.Sprintf("keys=%d", keys), func(t *testing.T) {
			s, _ := mixedStore(t, keys, 1)
			ss, err := s.Snapshot(ctx, snapRules, n)
			if err != nil {
				t.Fatal(err)
			}
			kept := len(ss.Recent) + len(ss.Penalized)
			if len(ss.Recent) != n {
				t.Fatalf("%d recent buckets, want %d", len(ss.Recent), n)
			}
			allocs := testing.AllocsPerRun(5, func() { _, _ = s.Snapshot(ctx, snapRules, n) })
			// Two heaps and two lists, the shared walk and its channel,
			// the two lists handed out: 8, and a key per bucket kept.
			if max := float64(8 + kept); allocs > max {
				t.Errorf("a walk of %d keys allocates %v times, want at most %v (8 + a key for each of the %d kept)", keys, allocs, max, kept)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _ = s.Snapshot(ctx, snapRules, n)
			runtime.ReadMemStats(&after)
			// Two heaps of 50, the lists and 100 keys: some 30 KB.
			if b := after.TotalAlloc - before.TotalAlloc; b > 64<<10 {
				t.Errorf("a walk of %d keys allocates %d bytes, want at most 64 KiB", keys, b)
			}
		})
	}
}

// tickingClock moves a millisecond every time it is read, so that a walk
// takes time on it.
type tickingClock struct{ *fakeclock.Clock }

func (c tickingClock) Now() time.Time {
	c.Advance(time.Millisecond)
	return c.Clock.Now()
}

// TestSnapshotSharesRecentWalk checks when a walk's result is reused: by a
// call soon after it (within shareFactor times its duration) for as many
// buckets or fewer; not after a Reset, not later, not for more buckets, and
// never on a stopped clock.
func TestSnapshotSharesRecentWalk(t *testing.T) {
	ctx := context.Background()
	clock := tickingClock{fakeclock.New(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))}
	s := New(clock)
	bs := []ratelimit.Bucket{{Key: []byte("run:ip:192.0.2.1"), Capacity: 1, Interval: 3600e6, Window: 3600e6}}
	rs := make([]ratelimit.Result, 1)
	take := func(key string) {
		t.Helper()
		bs[0].Key = []byte(key)
		if err := s.Take(ctx, snapRules, bs, rs); err != nil {
			t.Fatal(err)
		}
	}
	keys := func(n int) []string {
		t.Helper()
		ss, err := s.Snapshot(ctx, snapRules, n)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range ss.Recent {
			out = append(out, b.Key)
		}
		return out
	}
	take("run:ip:192.0.2.1")
	if diff := gocmp.Diff([]string{"run:ip:192.0.2.1"}, keys(10)); diff != "" {
		t.Fatalf("first walk (-want +got):\n%s", diff)
	}
	take("run:ip:192.0.2.2")
	if diff := gocmp.Diff([]string{"run:ip:192.0.2.1"}, keys(5)); diff != "" {
		t.Errorf("a call right after a walk, for fewer buckets, shares it (-want +got):\n%s", diff)
	}
	if got := keys(11); len(got) != 2 {
		t.Errorf("a call for more buckets walks again: got %v", got)
	}
	take("run:ip:192.0.2.3")
	if err := s.Reset(ctx, "run:ip:192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff([]string{"run:ip:192.0.2.2", "run:ip:192.0.2.3"}, keys(11)); diff != "" {
		t.Errorf("a Reset forgets the shared result (-want +got):\n%s", diff)
	}
	take("run:ip:192.0.2.4")
	clock.Advance(time.Second)
	if got := keys(11); len(got) != 3 {
		t.Errorf("a call a second later walks again: got %v", got)
	}

	stopped := fakeclock.New(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	s = New(stopped)
	take("run:ip:192.0.2.1")
	_ = keys(10)
	take("run:ip:192.0.2.2")
	if got := keys(10); len(got) != 2 {
		t.Errorf("on a stopped clock every call walks: got %v", got)
	}
}

// pausingCtx pauses the first walk that asks it for its error (between
// its first and second shard) until resume is closed.
type pausingCtx struct {
	context.Context
	once           sync.Once
	paused, resume chan struct{}
}

func (c *pausingCtx) Err() error {
	c.once.Do(func() {
		close(c.paused)
		<-c.resume
	})
	return nil
}

// TestSnapshotAfterResetDuringWalk: a Reset that lands while a walk runs,
// after the walk read the reset key, must not be undone by that walk: a
// poll that starts after the Reset returned does not take the walk's
// result, in flight or finished.
func TestSnapshotAfterResetDuringWalk(t *testing.T) {
	clock := tickingClock{fakeclock.New(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))}
	s := New(clock)
	// A key of the first shard, which the walk reads before it pauses.
	var key string
	for i := 0; ; i++ {
		key = fmt.Sprintf("run:ip:192.0.2.%d", i)
		if _, sh := s.hash([]byte(key)); sh == &s.shards[0] {
			break
		}
	}
	bs := []ratelimit.Bucket{{Key: []byte(key), Capacity: 1, Interval: 3600e6, Window: 3600e6}}
	if err := s.Take(context.Background(), snapRules, bs, make([]ratelimit.Result, 1)); err != nil {
		t.Fatal(err)
	}
	pc := &pausingCtx{Context: context.Background(), paused: make(chan struct{}), resume: make(chan struct{})}
	walked := make(chan error, 1)
	go func() {
		_, err := s.Snapshot(pc, snapRules, 10)
		walked <- err
	}()
	<-pc.paused
	if err := s.Reset(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	polled := make(chan []ratelimit.BucketState, 1)
	go func() {
		ss, err := s.Snapshot(context.Background(), snapRules, 10)
		if err != nil {
			t.Error(err)
		}
		polled <- ss.Recent
	}()
	time.Sleep(50 * time.Millisecond) // the poll joins the paused walk, if it may
	close(pc.resume)
	if err := <-walked; err != nil {
		t.Fatal(err)
	}
	if got := <-polled; len(got) != 0 {
		t.Errorf("a poll after the Reset lists %v", got)
	}
	if ss, err := s.Snapshot(context.Background(), snapRules, 10); err != nil || len(ss.Recent) != 0 {
		t.Errorf("the next poll lists %v (%v)", ss.Recent, err)
	}
}
