package queue

import (
	"context"
	"testing"
	"time"
)

// TestExpireSkipsARunBeforeItsDeadline: a timer fire that reaches a worker
// whose run has not reached its deadline (a fire meant for the previous
// run, arriving after the next began) leaves the run alone: nothing taken
// over, no worker replaced, no handler counted abandoned. Without the
// deadline check it would cut the new run short (review simp37 M1(b)).
func TestExpireSkipsARunBeforeItsDeadline(t *testing.T) {
	s := NewService(Deps{}, Config{Concurrency: 1})
	p := NewPool(s)
	w := p.newWorker()
	h := &held{lease: Lease{Job: &Job{ID: "j", Queue: "q", Type: "t"}}, timeout: time.Hour, deadline: time.Now().Add(time.Hour)}
	h.ctx, h.cancel = context.WithCancelCause(context.Background())
	defer h.cancel(nil)
	w.h.Store(h)
	// Every replacement taken: a fire that took the run over would keep
	// the worker (no new worker to start here).
	p.replaced.Store(1)
	run := uint64(7)<<2 | runRunning
	w.state.Store(run)
	w.expire()
	if got := w.state.Load(); got != run {
		t.Errorf("the run's state after an early fire: %d, want %d (still running)", got, run)
	}
	if a := s.AbandonedHandlers(); a != 0 || h.ctx.Err() != nil {
		t.Errorf("after an early fire: %d handlers abandoned, the run's context %v; want none, running", a, h.ctx.Err())
	}
}
