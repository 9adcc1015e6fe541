package redisstore

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// batcher coalesces concurrent requests into round trips. A request that
// finds nothing in flight and nothing queued runs at once on its caller's
// goroutine, so a lone caller pays no hand-off; otherwise it queues, and the
// flushers (at most Options.Flushers round trips in flight) take everything
// queued in one round trip each.
type batcher struct {
	s        *Store
	mu       sync.Mutex
	queue    []*group
	inflight int
	kick     chan struct{}
	quit     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

func (b *batcher) start(s *Store, flushers int) {
	b.s = s
	b.kick = make(chan struct{}, flushers)
	b.quit = make(chan struct{})
	for range flushers {
		b.wg.Add(1)
		go b.flusher(flushers)
	}
}

func (b *batcher) stop() {
	b.stopOnce.Do(func() {
		close(b.quit)
		b.wg.Wait()
	})
}

// do runs g's ops and returns when they are done or deadline (the store's
// Timeout from the start of the request) passes, or, for a queued caller,
// ctx ends, whichever is first: a caller never waits longer than the
// store's timeout, even on a client whose sockets ignore context deadlines.
// A queued caller needs no context timer for that; a lone caller's round
// trip carries the deadline in its context.
func (b *batcher) do(ctx context.Context, g *group, deadline time.Time) error {
	b.mu.Lock()
	if b.s.direct && b.inflight == 0 && len(b.queue) == 0 {
		b.inflight++
		b.mu.Unlock()
		// The client honours context deadlines: this one bounds the trip.
		tctx, cancel := context.WithDeadline(ctx, deadline)
		gs := [1]*group{g}
		if b.s.cluster != nil {
			b.s.execApart(tctx, gs[:])
		} else {
			b.s.exec(tctx, gs[:])
		}
		cancel()
		b.mu.Lock()
		b.inflight--
		if len(b.queue) > 0 {
			b.wake()
		}
		b.mu.Unlock()
		return nil
	}
	// Only a queued request needs a signal: made here, a lone caller's
	// round trip allocates none.
	g.done = make(chan struct{})
	b.queue = append(b.queue, g)
	b.wake()
	b.mu.Unlock()
	// The group's timer is kept with it in groupPool: waiting allocates no
	// context and no timer.
	wait := time.Until(deadline)
	if g.timer == nil {
		g.timer = time.NewTimer(wait)
	} else {
		g.timer.Reset(wait)
	}
	var err error
	select {
	case <-g.done:
		g.timer.Stop()
		return nil
	case <-ctx.Done():
		g.timer.Stop()
		err = ctx.Err()
	case <-g.timer.C:
		err = context.DeadlineExceeded
	}
	// An answer that came with the end of the wait is still the answer: the
	// decision was made, and its tokens spent.
	select {
	case <-g.done:
		return nil
	default:
	}
	g.abandoned.Store(true)
	b.mu.Lock()
	queued := slices.Contains(b.queue, g)
	b.mu.Unlock()
	if queued {
		// Never sent: no server is to blame (a flusher that takes it now
		// finds it abandoned and drops it).
		return &ratelimit.PartialError{NotSent: true, Err: wrap(err, "take")}
	}
	if g.pending.Load() > 0 {
		// Split by master (byMaster): the keys whose masters answered are
		// not to blame, the others are. An answered op is read only once
		// its bit is set (after its answer was written); the others may
		// still be written by their flusher.
		var failed, decided []int
		answered := g.answered.Load()
		for i := range g.ops {
			switch {
			case answered&(1<<i) == 0:
				failed = append(failed, i)
			case g.ops[i].err == nil:
				decided = append(decided, i)
			}
		}
		return &ratelimit.PartialError{Failed: failed, Decided: decided, Err: wrap(err, "take")}
	}
	return wrap(err, "take")
}

// wake nudges a flusher; the caller holds mu.
func (b *batcher) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

func (b *batcher) flusher(max int) {
	defer b.wg.Done()
	for {
		select {
		case <-b.quit:
			return
		case <-b.kick:
		}
		for {
			b.mu.Lock()
			if len(b.queue) == 0 || b.inflight >= max {
				b.mu.Unlock()
				break
			}
			queued := b.queue
			b.queue = nil
			b.inflight++
			b.mu.Unlock()

			batch := queued[:0]
			for _, g := range queued {
				if g.abandoned.Load() {
					close(g.done)
					continue
				}
				batch = append(batch, g)
			}
			if len(batch) > 0 {
				b.s.decide(batch)
			}
			// The callers just answered are runnable on this P. Letting them
			// run first (each to its next decision, which queues) before
			// taking the queue makes the next round trip carry them too,
			// rather than the few queued meanwhile: at 32 callers 14 keys a
			// call instead of 9.5, and fewer, fuller round trips cost both
			// sides less per decision (BENCHMARKS.md). One yield per round
			// trip; a lone caller never gets here.
			runtime.Gosched()

			b.mu.Lock()
			b.inflight--
			b.mu.Unlock()
		}
	}
}
