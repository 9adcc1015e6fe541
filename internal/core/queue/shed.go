package queue

import (
	"time"
)

// The states of a held job. A worker that takes the job from the channel
// moves it from waiting to started and runs it; the fetcher moves a job
// waiting too long from waiting to shed and hands it back. Each is one
// compare-and-swap, so exactly one of them owns the job.
const (
	heldWaiting int32 = iota
	heldStarted
	heldShed
)

// minShedAfter is the least time a fetched job may wait for a worker before
// it is handed back.
const minShedAfter = 100 * time.Millisecond

// shedAfter is how long a fetched job may wait for a worker before the
// pool hands it back. Prefetching holds up to 1+prefetch jobs per worker
// while jobs average under fastJob, so a full buffer drains within
// (1+prefetch)·fastJob (100ms by default); a job still waiting after twice
// that is behind slow jobs, and jobs a little slower than average or a GC
// pause never get there. Jobs are fetched, and started in the backend,
// before a worker has them: this bounds how long one shows as running,
// keeps other daemons from it and risks an attempt on a crash, unrun.
func shedAfter(prefetch int) time.Duration {
	return max(minShedAfter, 2*time.Duration(1+prefetch)*fastJob)
}

// shedder is the fetcher's record of the jobs it hands to workers. Only
// the fetcher goroutine touches it.
type shedder struct {
	after time.Duration
	// sent are the jobs sent to the workers, oldest first, that may not
	// have started: the front ones are dropped as soon as they have.
	sent []*held
	// retry are jobs handed back whose Release failed, to release again at
	// retryAt: they stay held (their leases extended) meanwhile.
	retry   []*held
	retryAt time.Time
	backoff time.Duration
	timer   *time.Timer
}

// due returns the time the fetcher must act next: when the oldest job not
// yet started has waited shedAfter, or a failed hand-back is to be tried
// again. ok is false when nothing is due.
func (s *shedder) due() (at time.Time, ok bool) {
	s.trim()
	if len(s.sent) > 0 {
		at, ok = s.sent[0].fetched.Add(s.after), true
	}
	if len(s.retry) > 0 && (!ok || s.retryAt.Before(at)) {
		at, ok = s.retryAt, true
	}
	return at, ok
}

// trim drops the started jobs from the front of sent.
func (s *shedder) trim() {
	for len(s.sent) > 0 && s.sent[0].state.Load() != heldWaiting {
		s.sent[0] = nil
		s.sent = s.sent[1:]
	}
}

// await waits for a value from c or until (either may be nil) and reports
// true, or reports false when the fetcher must stop. Meanwhile it hands
// back the jobs waiting too long for a worker and retries failed
// hand-backs: the timer it needs runs only while there are such jobs.
func (p *Pool) await(c <-chan struct{}, until <-chan time.Time) bool {
	s := &p.shed
	for {
		var timeout <-chan time.Time // nil: nothing is due
		if at, ok := s.due(); ok {
			d := at.Sub(p.svc.clock.Now())
			if d <= 0 {
				p.shedDue()
				continue
			}
			select { // what is ready now needs no timer
			case <-c:
				return true
			case <-until:
				return true
			case <-p.fetchCtx.Done():
				return false
			default:
			}
			if s.timer == nil {
				s.timer = time.NewTimer(d)
			} else {
				s.timer.Reset(d)
			}
			timeout = s.timer.C
		}
		ready := true
		select {
		case <-c:
		case <-until:
		case <-p.fetchCtx.Done():
			ready = false
		case <-timeout:
			continue // something is due: see to it, then wait again
		}
		if timeout != nil {
			s.timer.Stop()
		}
		return ready
	}
}

// shedDue hands back every job not yet started once the oldest has waited
// shedAfter, and tries the failed hand-backs again when their time comes.
func (p *Pool) shedDue() {
	s := &p.shed
	now := p.svc.clock.Now()
	if len(s.retry) > 0 && !now.Before(s.retryAt) {
		hs := s.retry
		s.retry = nil
		p.release(hs)
	}
	s.trim() // the oldest may have started since
	if len(s.sent) == 0 || now.Before(s.sent[0].fetched.Add(s.after)) {
		return
	}
	var hs []*held
	for i, h := range s.sent {
		if h.state.CompareAndSwap(heldWaiting, heldShed) {
			hs = append(hs, h)
		}
		s.sent[i] = nil
	}
	s.sent = s.sent[:0]
	if len(hs) == 0 {
		return
	}
	// They will not run here: the fetcher may take jobs for the workers
	// they held (their slots come back as workers skip them), and, jobs
	// being slow, only one per idle worker.
	// The fetcher may be waiting for a worker to free room (every worker
	// busy, these jobs waiting): they made room instead. No job freed it
	// otherwise when the workers were held up (fail30b N1: a pool whose
	// waiting jobs were all handed back fetched nothing again, for good).
	p.freeRoom(len(hs))
	p.slowDown(s.after)
	p.release(hs)
}

// release hands shed jobs back to the backend: running → pending at the
// head of their queue, not counted as attempts. A job whose lease is no
// longer ours (recovered after it expired, cancelled) is someone else's
// now: it is forgotten. When Release fails, which of the jobs it released
// is unknown (a Redis Cluster master down fails only its queues' part; an
// answer lost after the script ran): running them here could run one
// another daemon took meanwhile, so they are never offered to workers
// again. They stay held, their leases extended so that no attempt is lost,
// and Release is tried again with backoff (by token: one already released
// answers that it is no longer ours); at shutdown they are handed back
// with the rest, and if that fails too their leases expire, as for any
// job the pool holds when the backend is down.
func (p *Pool) release(hs []*held) {
	s := &p.shed
	refs := make([]Ref, len(hs))
	for i, h := range hs {
		refs[i] = h.lease.Ref()
	}
	ok, err := p.svc.broker.Release(p.fetchCtx, refs)
	if err != nil {
		if p.fetchCtx.Err() == nil {
			p.svc.obs.BackendError("release", err)
		}
		s.retry = append(s.retry, hs...)
		s.backoff = nextBackoff(s.backoff)
		s.retryAt = p.svc.clock.Now().Add(s.backoff)
		return
	}
	if len(s.retry) == 0 {
		s.backoff = 0
	}
	for i, h := range hs {
		if ok[i] {
			p.svc.obs.Transition(string(StatusRunning), string(StatusPending))
		}
		p.drop(h)
	}
}

// handBackShed leaves the jobs whose hand-back failed to Shutdown's, as
// the fetcher stops.
func (p *Pool) handBackShed() {
	for _, h := range p.shed.retry {
		p.handBack(h, false)
	}
	p.shed.retry = nil
	if p.shed.timer != nil {
		p.shed.timer.Stop()
	}
}

// slowDown raises the average run time to at least d, so that the fetcher
// takes jobs one per idle worker until runs are fast again.
func (p *Pool) slowDown(d time.Duration) {
	for {
		old := p.avgRun.Load()
		if old >= int64(d) || p.avgRun.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}
