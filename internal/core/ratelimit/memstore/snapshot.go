package memstore

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// Snapshot implements ratelimit.Store. It visits every key, so it is meant
// for an operator's poll, not for every request, and it is built to cost
// decisions little:
//
//   - it takes no shard's lock: it reads each shard's table as a decision
//     does (a key added meanwhile may be missed, a slot removed meanwhile
//     is dead and skipped), taking each slot's own lock for the few
//     nanoseconds it copies the slot's state, and it yields the processor
//     between shards, so a decision waiting for a core waits for one
//     shard's walk at most;
//   - it allocates nothing per key: only the n best of each list are kept,
//     in two bounded heaps, and only the winners' keys are copied;
//   - callers share walks (see shareWalks): one that arrives while a walk
//     runs waits for it, and a walk's result serves for a while after it
//     (shareFactor times as long as it took), so any number of pollers cost
//     at most a tenth of a core.
//
// It stops early, with ctx's error, when ctx ends.
func (s *Store) Snapshot(ctx context.Context, r *ratelimit.Rules, n int) (ratelimit.StoreSnapshot, error) {
	for {
		w, mine := s.walks.join(s.micros(), r, n)
		if mine {
			w.res, w.err = s.walk(ctx, r, w.n)
			s.walks.finish(w, s.micros())
		} else {
			select {
			case <-w.done:
			case <-ctx.Done():
				return ratelimit.StoreSnapshot{}, ctx.Err()
			}
			if w.err != nil {
				continue // its caller went away: walk anew
			}
		}
		if w.err != nil {
			return ratelimit.StoreSnapshot{}, w.err
		}
		return firstOf(w.res, n), nil
	}
}

// shareFactor bounds the share of a core that snapshot walks take, however
// many pollers ask: a walk's result serves for shareFactor times as long as
// the walk took (a walk of 500k keys, 40 ms or so, serves for 360 ms; one of
// a thousand keys, for well under a millisecond), so walks run at most one
// part in shareFactor+1 of the time.
const shareFactor = 9

// maxShare caps how long a walk's result serves, whatever the walk cost.
const maxShare = 1_000_000 // µs

// shareWalks lets concurrent and closely following Snapshot calls share one
// walk. A Reset forgets the last result, so an operator who resets a bucket
// sees it at their next poll. Times are the store's clock: a test's stopped
// clock sees every walk take no time, and so never reuses a result.
type shareWalks struct {
	mu   sync.Mutex
	last *sharedWalk // in flight, or the last finished
	// gen counts resets: a walk started before one (in flight or done) may
	// have read the reset key, and is shared no more.
	gen uint64
}

// sharedWalk is one walk: its n, rules and result, and when it ran.
type sharedWalk struct {
	gen        uint64 // shareWalks.gen when it started
	n          int
	rules      ratelimit.Rules
	done       chan struct{} // closed when res and err are set
	res        ratelimit.StoreSnapshot
	err        error
	start, end int64 // store µs; end is 0 while the walk runs
}

// join returns the walk a call for n buckets at now can take its answer
// from, and true when the caller must run it (a new walk, of n buckets).
func (ws *shareWalks) join(now int64, r *ratelimit.Rules, n int) (*sharedWalk, bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if w := ws.last; w != nil && w.gen == ws.gen && w.n >= n && w.rules == *r {
		if w.end == 0 {
			return w, false
		}
		if took := w.end - w.start; w.err == nil && took > 0 && now >= w.end && now-w.end < min(shareFactor*took, maxShare) {
			return w, false
		}
	}
	w := &sharedWalk{gen: ws.gen, n: n, rules: *r, done: make(chan struct{}), start: now}
	ws.last = w
	return w, true
}

// finish records that w ended at now and wakes the callers waiting for it.
func (ws *shareWalks) finish(w *sharedWalk, now int64) {
	ws.mu.Lock()
	w.end = max(now, w.start+1) // never 0: 0 means running
	if w.err != nil && ws.last == w {
		ws.last = nil
	}
	ws.mu.Unlock()
	close(w.done)
}

// forget makes the next call walk anew: the last walk's result, and a walk
// still running (it may have read the reset key already), are shared no
// more.
func (ws *shareWalks) forget() {
	ws.mu.Lock()
	ws.gen++
	ws.mu.Unlock()
}

// walk visits every key for Snapshot.
func (s *Store) walk(ctx context.Context, r *ratelimit.Rules, n int) (ratelimit.StoreSnapshot, error) {
	now := s.micros()
	recent, pen := topK{k: n}, topK{k: n}
	count := 0
	var sink uint32
	defer func() { walkSink.Add(sink) }()
	for i := range s.shards {
		if i > 0 {
			if err := ctx.Err(); err != nil {
				return ratelimit.StoreSnapshot{}, err
			}
			runtime.Gosched()
		}
		t := s.shards[i].tab.Load()
		for j := 0; j < len(t.cells); {
			var batch [prefetch]*slot
			m := 0
			for ; j < len(t.cells) && m < len(batch); j++ {
				if v := t.cells[j].v.Load(); v != nil {
					batch[m] = v
					m++
				}
			}
			// Each slot is a line of its own, somewhere in the heap: read
			// them all before locking any, so that their fetches overlap.
			// A lock is a locked instruction, which lets no later load start
			// before it ends: locking each as it came made the walk wait
			// for one fetch after another (half again as slow at 500k keys).
			for _, v := range batch[:m] {
				sink += v.state.Load()
			}
			for _, v := range batch[:m] {
				if !v.lock() {
					continue
				}
				var c ratelimit.Cell
				s.load(v, &c)
				v.unlock()
				if !c.Shown(r, now) {
					continue
				}
				p := c.Penalized(r, now)
				if p {
					count++
				}
				if n > 0 {
					recent.offer(v, &c, 0, 0)
					if p {
						// Bans first (the latest to end first), then by
						// strikes: the keys an operator looks for.
						var ban int64
						if c.BannedUntil > now {
							ban = c.BannedUntil
						}
						pen.offer(v, &c, ban, int64(c.StrikesAt(r, now)))
					}
				}
			}
		}
	}
	return ratelimit.StoreSnapshot{Recent: recent.states(r, now), Penalized: pen.states(r, now), PenalizedKeys: count}, nil
}

// walkSink takes the sum of the states the walk reads ahead, so that the
// compiler keeps those reads.
var walkSink atomic.Uint32

// prefetch is how many slots the walk reads ahead of locking them.
const prefetch = 16

// topK keeps the k best slots offered to it, in a heap whose root is the
// worst it keeps: the one a better offer replaces. Best means the higher
// rank (two numbers the caller gives, the first deciding: 0 and 0 for the
// recent list, ban end and strikes for the penalized one, which makes it
// ratelimit.ByPenalty on the cells), then the most recently seen, then the
// smaller key.
type topK struct {
	k int
	h []ranked
}

// ranked is a slot kept by a topK with its state when it was offered, and
// its rank.
type ranked struct {
	v      *slot
	c      ratelimit.Cell
	r1, r2 int64
}

// before reports whether a comes before b in a snapshot's list. A slot's
// key never changes, so it is read without the slot's lock.
func before(a, b *ranked) bool {
	switch {
	case a.r1 != b.r1:
		return a.r1 > b.r1
	case a.r2 != b.r2:
		return a.r2 > b.r2
	case a.c.Seen != b.c.Seen:
		return a.c.Seen > b.c.Seen
	}
	return a.v.key() < b.v.key()
}

func (t *topK) offer(v *slot, c *ratelimit.Cell, r1, r2 int64) {
	x := ranked{v: v, c: *c, r1: r1, r2: r2}
	if len(t.h) < t.k {
		if t.h == nil {
			t.h = make([]ranked, 0, min(t.k, 64))
		}
		t.h = append(t.h, x)
		t.up(len(t.h) - 1)
		return
	}
	if !before(&x, &t.h[0]) {
		return
	}
	t.h[0] = x
	t.down(0)
}

// worse reports whether h[i] comes after h[j]: the heap keeps the worse on
// top.
func (t *topK) worse(i, j int) bool {
	return before(&t.h[j], &t.h[i])
}

func (t *topK) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t.worse(i, p) {
			return
		}
		t.h[i], t.h[p] = t.h[p], t.h[i]
		i = p
	}
}

func (t *topK) down(i int) {
	for {
		w, l := i, 2*i+1
		if l < len(t.h) && t.worse(l, w) {
			w = l
		}
		if r := l + 1; r < len(t.h) && t.worse(r, w) {
			w = r
		}
		if w == i {
			return
		}
		t.h[i], t.h[w] = t.h[w], t.h[i]
		i = w
	}
}

// states returns the kept slots' states at now, best first, each with a
// copy of its key; nil when none was kept.
func (t *topK) states(r *ratelimit.Rules, now int64) []ratelimit.BucketState {
	if len(t.h) == 0 {
		return nil
	}
	slices.SortFunc(t.h, func(a, b ranked) int {
		if before(&a, &b) {
			return -1
		}
		return 1
	})
	out := make([]ratelimit.BucketState, len(t.h))
	for i := range t.h {
		out[i] = t.h[i].c.State(strings.Clone(t.h[i].v.key()), r, now)
	}
	return out
}

// firstOf returns the first n of each of ss's lists, copied (a shared
// result's lists are never handed out), nil where there are none.
func firstOf(ss ratelimit.StoreSnapshot, n int) ratelimit.StoreSnapshot {
	head := func(bs []ratelimit.BucketState) []ratelimit.BucketState {
		if n <= 0 || len(bs) == 0 {
			return nil
		}
		return slices.Clone(bs[:min(n, len(bs))])
	}
	return ratelimit.StoreSnapshot{Recent: head(ss.Recent), Penalized: head(ss.Penalized), PenalizedKeys: ss.PenalizedKeys}
}
