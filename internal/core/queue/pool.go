package queue

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pool runs jobs: Concurrency workers fed by one fetcher that takes jobs in
// batches (each worker's job plus Prefetch more), one finisher that records
// outcomes in batches (group commit: whatever finished while the previous
// batch was written goes in the next), a heartbeat that extends the leases
// of every job the pool holds, and the tick loop that promotes due jobs and
// recovers expired leases.
//
// A fetched job is started in the backend (running, an attempt counted)
// before a worker has it. The fetcher hands back, not counted as attempts,
// the jobs no worker has started within shedAfter of their fetch (slow jobs
// prefetched while jobs were fast), and stops prefetching until runs are
// fast again: see shed.go.
//
// Delivery is at least once: a job is leased before it runs and its outcome
// is written after; a crash in between leaves the lease to expire and the
// job to run again. A worker whose lease is lost (recovered elsewhere,
// cancelled) has its context cancelled and its outcome dropped by the
// broker's fencing token.
//
// With Concurrency 0 (manual mode) Start runs nothing: only RunNext, RunID
// and Tick move jobs.
type Pool struct {
	svc *Service
	cfg Config

	jobs     chan *held
	outcomes chan finished
	slots    chan struct{} // one per job the pool may hold (running + prefetched)
	shed     shedder       // the fetcher's: jobs sent to workers and not yet started

	mu      sync.Mutex
	held    map[*held]struct{}
	handOff []Ref // jobs to hand back at shutdown
	// interrupted are the ids of handOff's jobs whose handler the
	// shutdown's deadline cut short (the others never started).
	interrupted []string
	report      ShutdownReport // what Shutdown did, once it returned

	stopping atomic.Bool
	started  atomic.Bool
	quiet    sync.Once     // StopFetching's
	inflight atomic.Int64  // jobs fetched and not yet run to the end
	avgRun   atomic.Int64  // moving average of handler run time (ns); -1 until the first run
	freed    chan struct{} // a worker finished a job (for the fetcher waiting on slow jobs)

	fetchCtx    context.Context // cancelled by StopFetching
	stopFetch   context.CancelFunc
	runCtx      context.Context // parent of handlers' contexts: cancelled at the shutdown deadline
	stopRun     context.CancelFunc
	bgCtx       context.Context // heartbeat and tick: cancelled last
	stopBG      context.CancelFunc
	fetcherDone chan struct{}
	workers     sync.WaitGroup
	// replaced counts the workers whose handler outlived its timeout and
	// that a new worker replaced while it runs on: at most Concurrency.
	replaced atomic.Int64
	finisher chan struct{}
	bg       sync.WaitGroup
}

// finished is the outcome of a held job, waiting to be written. The job stays
// held (its lease extended) until its outcome is written, so that a slow or
// failing write never costs it its lease.
type finished struct {
	o Outcome
	h *held
}

// held is one job the pool holds under a lease.
type held struct {
	lease  Lease
	ctx    context.Context
	cancel context.CancelCauseFunc
	// fetched is when the fetcher took it; state moves once, from
	// heldWaiting to heldStarted (a worker runs it) or heldShed (the fetcher
	// hands it back), so that a job is run or handed back, never both.
	fetched time.Time
	state   atomic.Int32
	// started is when a worker started its run (the service's clock, for
	// the run's duration), deadline when its timeout ends it (time.Now's,
	// as the worker's timer), timeout the run's bound. Set before the
	// worker publishes the run.
	started, deadline time.Time
	timeout           time.Duration
	// parts counts what a kept worker's job waits for before its room and
	// slot are freed: its handler's return and its outcome's hand-over
	// (releaseKept).
	parts atomic.Int32
}

// NewPool returns a pool running the jobs of svc with svc's settings.
func NewPool(svc *Service) *Pool {
	cfg := svc.cfg
	capacity := max(1, cfg.Concurrency*(1+cfg.Prefetch))
	p := &Pool{
		svc:         svc,
		cfg:         cfg,
		jobs:        make(chan *held, capacity),
		outcomes:    make(chan finished, capacity),
		slots:       make(chan struct{}, capacity),
		held:        map[*held]struct{}{},
		fetcherDone: make(chan struct{}),
		freed:       make(chan struct{}, 1),
		finisher:    make(chan struct{}),
	}
	p.avgRun.Store(-1)
	p.shed.after = shedAfter(cfg.Prefetch)
	p.fetchCtx, p.stopFetch = context.WithCancel(context.Background())
	p.runCtx, p.stopRun = context.WithCancel(context.Background())
	p.bgCtx, p.stopBG = context.WithCancel(context.Background())
	return p
}

// Start starts the workers, the fetcher, the finisher, the heartbeat and the
// tick loop; in manual mode it starts nothing.
func (p *Pool) Start() {
	if p.cfg.Concurrency <= ManualMode || !p.started.CompareAndSwap(false, true) {
		return
	}
	p.svc.mu.Lock()
	p.svc.pool = p
	p.svc.mu.Unlock()
	for range cap(p.slots) {
		p.slots <- struct{}{}
	}
	go p.fetch()
	go p.finish()
	p.workers.Add(p.cfg.Concurrency)
	for range p.cfg.Concurrency {
		go p.newWorker().work()
	}
	p.bg.Add(2)
	go p.heartbeat()
	go p.tick()
}

// Shutdown stops taking jobs, hands back the ones fetched but not started,
// lets running ones finish until the ShutdownTimeout or ctx ends (whichever
// is first), then cancels them and hands them back too. It returns ctx's
// error if ctx ended before everything was written.
func (p *Pool) Shutdown(ctx context.Context) error {
	if !p.started.Load() || !p.stopping.CompareAndSwap(false, true) {
		return nil
	}
	p.StopFetching()

	grace := time.NewTimer(p.cfg.ShutdownTimeout)
	defer grace.Stop()
	done := make(chan struct{})
	go func() { p.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-grace.C:
	case <-ctx.Done():
	}
	p.stopRun() // handlers still running see ctx cancelled and are handed back
	// What is left (the hand-backs, the release, and the background loops'
	// calls in flight) gets until end: ctx's time, and at least
	// releaseGrace past it.
	end, endNow := context.WithTimeout(context.WithoutCancel(ctx), releaseBudget(ctx))
	defer endNow()
	select {
	case <-done:
	case <-end.Done():
		// A handler ignores its context: leave its lease to expire.
	}
	// Outcomes still to come (a timeout's callback settled as the wait
	// gave up) are dropped from here on (send).
	close(p.outcomes)
	select {
	case <-p.finisher:
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
	}
	// Outcomes not written by now (backend down) are left to their leases;
	// this also stops the heartbeat and the tick loop.
	p.stopBG()
	p.mu.Lock()
	refs := p.handOff
	p.handOff = nil
	clear(p.held)
	report := ShutdownReport{Interrupted: p.interrupted}
	p.mu.Unlock()
	if len(refs) > 0 {
		ok, err := p.svc.broker.Release(end, refs)
		if err != nil {
			p.svc.obs.BackendError("release", err)
		}
		for _, v := range ok {
			if v {
				report.HandedBack++
				p.svc.obs.Transition(string(StatusRunning), string(StatusPending))
			}
		}
		report.NotHandedBack = len(refs) - report.HandedBack
	}
	p.mu.Lock()
	p.report = report
	p.mu.Unlock()
	// A loop inside a call to a stalled Redis ends with that call (at its
	// read deadline, or at once when the client is closed): it is not
	// waited for past end.
	bgDone := make(chan struct{})
	go func() { <-p.finisher; p.bg.Wait(); close(bgDone) }()
	select {
	case <-bgDone:
	case <-end.Done():
	}
	return ctx.Err()
}

// lastTryWindow is how long after the last job on its last try it saw the
// pool fetches for free workers only (FetchRequest.Ahead 0): such jobs are
// taken only for a free worker, and while jobs are held ahead none is.
const lastTryWindow = time.Second

// ShutdownReport says what Shutdown did with the jobs it did not let
// finish: those the workers held ready and those whose handler its deadline
// (SHUTDOWN_TIMEOUT) cut short.
type ShutdownReport struct {
	// HandedBack counts the jobs released to the head of their queues:
	// their next run is not counted as an attempt.
	HandedBack int
	// NotHandedBack counts those the release did not reach (the backend
	// failing, or a job no longer ours): recovered when their leases
	// expire, as an attempt.
	NotHandedBack int
	// Interrupted are the ids of the jobs whose handler the deadline cut
	// short (handed back or not).
	Interrupted []string
}

// Report returns what the last Shutdown did; the zero report before one
// returned.
func (p *Pool) Report() ShutdownReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.report
}

// releaseGrace is how long the hand-back at shutdown may take once ctx's
// time is up: jobs still running at the deadline are handed back in one
// round trip (a few milliseconds) rather than left to their leases, and a
// backend that does not answer delays the exit by no more than this.
const releaseGrace = 500 * time.Millisecond

// releaseBudget is the time the hand-back at shutdown gets: what is left of
// ctx's, but at least releaseGrace, and at most 5s.
func releaseBudget(ctx context.Context) time.Duration {
	budget := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		budget = min(budget, max(time.Until(d), releaseGrace))
	}
	return budget
}

// StopFetching stops taking jobs: the fetcher ends, and the jobs fetched but
// not started are handed back as the workers reach them, but those a caller
// of this process waits for (Service.Wait), which run; running jobs go on,
// and their outcomes are written. Shutdown starts with it; a daemon
// calls it as soon as it is told to stop, so that no job starts while its
// HTTP requests drain (a job started then would be cut short at the
// deadline and run again elsewhere). It returns once the fetcher is done.
func (p *Pool) StopFetching() {
	if !p.started.Load() {
		return
	}
	p.quiet.Do(func() {
		p.stopFetch()
		<-p.fetcherDone
		close(p.jobs) // only the fetcher sends; workers now drain and hand back
	})
}

// Fetching is a context that ends when the pool stops taking jobs
// (StopFetching, Shutdown); a pool that never started (manual mode) never
// stops taking them, and its context never ends.
func (p *Pool) Fetching() context.Context { return p.fetchCtx }

// fetch takes jobs whenever the pool has room, in batches, blocking on the
// broker while none is pending and backing off while it fails.
func (p *Pool) fetch() {
	defer close(p.fetcherDone)
	defer p.handBackShed()
	backoff := time.Duration(0)
	lastTry := ""     // a queue whose head job, on its last try, waits for a free worker
	var heldIn string // where a fetch left such a job (FetchRequest.Held)
	// Until then no job is held ahead of the workers: jobs on their last
	// try were seen (left at a queue's head, or taken) within lastTryWindow.
	var noAheadUntil time.Time
	order := newQueueOrder(p.cfg.WorkerQueues, p.cfg.StrictOrder, p.svc.rnd) // nil: every queue
	for {
		// Wait for one free slot, then take every other free one.
		if !p.await(p.slots, nil) {
			return
		}
		n := 1
	more:
		for {
			select {
			case <-p.slots:
				n++
			default:
				break more
			}
		}
		if limit := p.fetchLimit(); n > limit {
			for range n - max(limit, 1) {
				p.slots <- struct{}{}
			}
			n = max(limit, 1)
			if limit == 0 {
				// Slow jobs and every worker busy: prefetching would only
				// hold jobs another daemon could run. Wait for a worker.
				p.slots <- struct{}{}
				if !p.await(p.freed, nil) {
					return
				}
				continue
			}
		}
		// With every worker busy and jobs waiting for them, more jobs could
		// only wait too: take those pending now, but do not block waiting
		// for new ones (the wait would hold back the hand-back).
		inflight := p.inflight.Load()
		busy := inflight > int64(p.cfg.Concurrency)
		wait := p.cfg.FetchWait
		if busy {
			wait = 0
		}
		// Only the jobs a free worker starts at once may be on their last
		// try: one held ready behind a busy worker is already running in
		// the backend, its attempt counted, and a crash of this process
		// would make it dead unrun (review qsem31 M1). The broker leaves
		// such a job pending for a worker that is free.
		free := int(min(max(int64(p.cfg.Concurrency)-inflight, 0), int64(n)))
		if lastTry != "" || time.Now().Before(noAheadUntil) {
			// Such a job waits: while jobs are held ready no worker counts
			// as free, and a queue's job on its last try waited behind
			// every other queue's backlog (review ver31 HIGH-1). Hold no
			// more ahead until a worker is free, then fetch for the free
			// workers only, that queue first; and go on fetching for free
			// workers only while such jobs keep coming, so that their
			// queue takes its turn with the others (resuming the holding
			// after each one gave it one job per full hold of the others':
			// review ver31b).
			if free == 0 {
				for range n {
					p.slots <- struct{}{}
				}
				if !p.await(p.freed, nil) {
					return
				}
				continue
			}
			for range n - free {
				p.slots <- struct{}{}
			}
			n = free
		}
		heldIn = ""
		req := FetchRequest{N: n, Lease: p.cfg.Lease, Wait: wait, Ahead: n - free, Prefer: lastTry, Held: &heldIn}
		order.request(&req)
		leases, err := p.svc.broker.Fetch(p.fetchCtx, req)
		if err == nil || heldIn != "" {
			// Tried first with every job starting at once: taken, or gone.
			lastTry = heldIn
		}
		seen := heldIn != ""
		for _, l := range leases {
			seen = seen || LastTry(l.Job.Retries, l.Job.MaxRetries)
		}
		if seen {
			noAheadUntil = time.Now().Add(lastTryWindow)
		}
		p.inflight.Add(int64(len(leases)))
		var now time.Time
		if len(leases) > 0 {
			now = p.svc.clock.Now()
		}
		for _, l := range leases {
			h := &held{lease: l, fetched: now}
			h.ctx, h.cancel = context.WithCancelCause(p.runCtx)
			p.mu.Lock()
			p.held[h] = struct{}{}
			p.mu.Unlock()
			p.svc.obs.Transition(string(StatusPending), string(StatusRunning))
			p.shed.sent = append(p.shed.sent, h)
			p.jobs <- h // never blocks: the channel holds every slot
		}
		for range n - len(leases) {
			p.slots <- struct{}{}
		}
		if err != nil && p.fetchCtx.Err() == nil {
			p.svc.obs.BackendError("fetch", err)
			// Jobs with an error are some queues' failure (one broken, a
			// Cluster master failing) while the others answered: the
			// fetcher goes on without backing off, as the backend works.
			if len(leases) == 0 {
				backoff = nextBackoff(backoff)
				t := time.NewTimer(backoff)
				ok := p.await(nil, t.C)
				t.Stop()
				if !ok {
					return
				}
				continue
			}
		}
		backoff = 0
		if busy && len(leases) == 0 {
			// Nothing pending: block on the backend again only once every
			// job held has a worker (those waiting too long are handed
			// back meanwhile).
			for p.inflight.Load() > int64(p.cfg.Concurrency) {
				if !p.await(p.freed, nil) {
					return
				}
			}
		} else if free == 0 && len(leases) == 0 && err == nil {
			// Every worker busy and nothing taken: either nothing was
			// pending (the broker waited for a job already) or the next
			// job is on its last try, left for a free worker, and the
			// broker answered at once. Fetch again once a worker is free,
			// not in a loop of fetches that take nothing.
			for p.inflight.Load() >= int64(p.cfg.Concurrency) {
				if !p.await(p.freed, nil) {
					return
				}
			}
		}
	}
}

// fastJob is the average run time under which a pool prefetches: for
// jobs this short, holding a few per worker costs other daemons nothing
// noticeable, and it saves a round trip per job.
const fastJob = 10 * time.Millisecond

// fetchLimit is how many jobs the fetcher may take now: every free slot
// while jobs are fast, else only enough to keep each worker busy.
func (p *Pool) fetchLimit() int {
	if avg := p.avgRun.Load(); avg >= 0 && time.Duration(avg) < fastJob {
		return cap(p.slots)
	}
	return max(0, p.cfg.Concurrency-int(p.inflight.Load()))
}

// observeRun folds one handler run time into the moving average.
func (p *Pool) observeRun(d time.Duration) {
	for {
		old := p.avgRun.Load()
		next := int64(d)
		if old >= 0 {
			next = old - old/8 + int64(d)/8
		}
		if p.avgRun.CompareAndSwap(old, next) {
			return
		}
	}
}

// nextBackoff doubles d from 50ms up to 5s, with jitter, so a pool does not
// spin while its backend is down.
func nextBackoff(d time.Duration) time.Duration {
	d = min(max(2*d, 50*time.Millisecond), 5*time.Second)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// freeRoom counts n jobs held no more (run, or handed back) and wakes the
// fetcher if it waits for room.
func (p *Pool) freeRoom(n int) {
	p.inflight.Add(-int64(n))
	select {
	case p.freed <- struct{}{}:
	default:
	}
}

// work runs jobs until the job channel is closed, or until a handler of
// its outlives its timeout and a new worker takes its place.
func (w *worker) work() {
	p := w.p
	ran := 0
	for h := range p.jobs {
		if !h.state.CompareAndSwap(heldWaiting, heldStarted) {
			// Handed back by the fetcher, which accounts for it; its slot
			// is freed here, where it leaves the channel.
			p.slots <- struct{}{}
			continue
		}
		// After StopFetching nothing more starts, but a job a request of
		// this process waits for (POST /assistant, served as HTTP drains).
		if p.fetchCtx.Err() != nil && !p.svc.awaited(h.lease.Job.ID) {
			p.handBack(h, false)
			continue
		}
		o, ok := w.run(h)
		if !ok {
			// Its timeout took the run over (the attempt failed by then):
			// the handler returned late, its result dropped.
			p.svc.abandon(-1)
			if w.state.Load()&runMask == runReplaced {
				p.replaced.Add(-1)
				return // a new worker took this one's place (and its count)
			}
			// Kept: this worker goes on, its job's room and slot freed
			// once the outcome is handed over too.
			p.releaseKept(h)
			continue
		}
		p.settle(h, o, false)
		p.freeRoom(1)
		p.slots <- struct{}{}
		// Jobs are background work: every yieldEvery jobs, yield, so that
		// a stream of short jobs cannot keep this P busy handing the CPU
		// from fetcher to worker to finisher while the requests that
		// queued those jobs wait for the network to be polled.
		if ran++; ran%yieldEvery == 0 {
			runtime.Gosched()
		}
	}
	p.workers.Done()
}

// settle hands the outcome o of held job h's run over to be written; a
// run its shutdown's deadline cut short (unless its timeout did: timedOut)
// is handed back, one whose lease was lost dropped. Its caller then frees
// the job's room (freeRoom), once the outcome is handed over: a worker
// waiting for a writer that fell behind is not free, and a job on its last
// try fetched for it would wait held (review ver31 NIT-2).
func (p *Pool) settle(h *held, o Outcome, timedOut bool) {
	switch {
	case !timedOut && p.runCtx.Err() != nil && h.ctx.Err() != nil && !errors.Is(context.Cause(h.ctx), ErrLeaseLost):
		p.handBack(h, true) // interrupted by shutdown: not the job's fault
	case errors.Is(context.Cause(h.ctx), ErrLeaseLost):
		p.drop(h) // no longer ours: write nothing
	default:
		p.send(finished{o, h}) // dropped once written
	}
}

// releaseKept frees the room and the slot of a job whose run its timeout took
// over while its worker was kept (waiting for the handler): once both the
// handler has returned and the outcome is handed over, whichever is last.
// Until then the worker is not free, and the fetcher takes no job for it.
func (p *Pool) releaseKept(h *held) {
	if h.parts.Add(1) == 2 {
		p.freeRoom(1)
		p.slots <- struct{}{}
	}
}

// send hands f to the finisher. Once Shutdown has given up waiting for
// the workers and closed the outcomes, f is dropped: its job's lease
// expires and the tick recovers it, as it does the outcomes not written by
// then. That takes a timeout's outcome settled as Shutdown gives up, its
// send blocked by a finisher that cannot write (the backend down); the
// recover costs the hot path nothing, where a lock would cost every job.
func (p *Pool) send(f finished) {
	defer func() { _ = recover() }() // only "send on closed channel" can panic here
	p.outcomes <- f
}

// A worker runs the pool's jobs one at a time, each in the worker's own
// goroutine (no hand-off to another: the run of a no-op job costs a
// clock read, a timer's reset and stop and a few atomic operations more
// than the call),
// bounded by the job's timeout with one timer the worker reuses. When the
// timer fires first, its callback (expire) takes the run over: it fails
// the attempt at once and, while fewer than Concurrency workers of the
// pool are waiting so, starts a new worker in this one's place; the
// handler's goroutine, left to return on its own, then ends.
type worker struct {
	p     *Pool
	timer *time.Timer
	// state is the run's number (<< 2) and where it is: runIdle,
	// runRunning, and once the timer took it over runReplaced (a new
	// worker runs in this one's place) or runKept (this one goes on once
	// its handler returns, as Concurrency others wait already).
	state atomic.Uint64
	h     atomic.Pointer[held] // the job of the run
}

const (
	runIdle uint64 = iota
	runRunning
	runReplaced
	runKept
	runMask = 3
)

func (p *Pool) newWorker() *worker {
	w := &worker{p: p}
	w.timer = time.AfterFunc(time.Hour, w.expire)
	w.timer.Stop()
	return w
}

// run runs held job h's handler on the worker's goroutine, bounded by its
// timeout, and returns its outcome; false when its timeout took the run
// over (expire), whose outcome is then no longer this call's.
func (w *worker) run(h *held) (Outcome, bool) {
	p := w.p
	j := h.lease.Job
	start := p.svc.begin(j)
	hd, ok := p.svc.registry.Lookup(j.Type)
	if !ok {
		o := p.svc.outcome(h.ctx, h.lease, start, nil, noHandler(j.Type), false)
		p.observeRun(p.svc.clock.Now().Sub(start))
		return o, true
	}
	h.started = start
	h.timeout = p.svc.Timeout(j)
	h.deadline = time.Now().Add(h.timeout)
	w.h.Store(h)
	s := (w.state.Load()>>2+1)<<2 | runRunning
	w.state.Store(s)
	w.timer.Reset(h.timeout)
	res, err := runHandler(h.ctx, hd, j)
	if !w.state.CompareAndSwap(s, s&^runMask) { // runIdle
		return Outcome{}, false
	}
	w.timer.Stop()
	o := p.svc.outcome(h.ctx, h.lease, start, res, err, false)
	p.observeRun(p.svc.clock.Now().Sub(start))
	return o, true
}

// expire is the worker's timer: at its run's deadline, with the handler
// still running, it takes the run over. The handler's context is
// cancelled and the attempt fails at once with ErrTimedOut (when the
// context had ended before, by a shutdown, a lost lease or a cancel, the
// run ends as that would have ended it), and the worker's place goes to a
// new worker while fewer than Concurrency are replaced so; beyond that,
// the worker takes its next job once its handler returns.
func (w *worker) expire() {
	p := w.p
	s := w.state.Load()
	if s&runMask != runRunning {
		return
	}
	h := w.h.Load()
	if time.Now().Before(h.deadline) {
		// A fire meant for a run that ended, seen after the next began:
		// the timer is set for this one.
		return
	}
	next := runKept
	if n := p.replaced.Add(1); n <= int64(p.cfg.Concurrency) {
		next = runReplaced
	} else {
		p.replaced.Add(-1)
	}
	// Counted before the CAS: once it succeeds, the handler's return may
	// count -1 at once, and the gauge never dips below zero.
	p.svc.abandon(1)
	if !w.state.CompareAndSwap(s, s&^runMask|next) {
		// It returned meanwhile, or a later run began: not ours.
		p.svc.abandon(-1)
		if next == runReplaced {
			p.replaced.Add(-1)
		}
		return
	}
	j := h.lease.Job
	timedOut := h.ctx.Err() == nil
	var err error
	if timedOut {
		err = p.svc.timedOut(j, h.timeout)
		h.cancel(err)
	} else {
		err = context.Cause(h.ctx)
	}
	o := p.svc.outcome(h.ctx, h.lease, h.started, nil, err, timedOut)
	p.observeRun(p.svc.clock.Now().Sub(h.started))
	if next == runReplaced {
		// This goroutine (the timer's) becomes the new worker, taking
		// over the old one's count in p.workers: a shutdown does not wait
		// for a handler left running.
		p.settle(h, o, timedOut)
		p.freeRoom(1)
		p.slots <- struct{}{}
		p.newWorker().work()
		return
	}
	p.workers.Add(1) // the old worker is still counted: not zero
	defer p.workers.Done()
	p.settle(h, o, timedOut)
	p.releaseKept(h)
}

// yieldEvery is how many jobs a worker runs between yields. A daemon
// saturated on one core (64 connections of POST /run, ping jobs, memory
// backend) answered with p99 7-14 ms and max 99-227 ms without yields, and
// with p99 5-6 ms and max 8-11 ms yielding after every job, every 4 or
// every 16, at the same req/s (alternated runs). A yield after every job
// cost a quarter of the pool's throughput on no-op jobs on one core
// (BenchmarkEndToEnd in membroker: 290-330k jobs/s against 380-440k); every
// 16 jobs, nothing measurable (400-440k).
const yieldEvery = 16

// stopJob stops the handler of job id if a worker of p runs it (the job
// was cancelled): its outcome is dropped as for a lost lease.
func (p *Pool) stopJob(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for h := range p.held {
		if h.lease.Job.ID == id {
			h.cancel(ErrJobCancelled)
		}
	}
}

// drop forgets a held job (no more heartbeats).
func (p *Pool) drop(h *held) {
	p.mu.Lock()
	delete(p.held, h)
	p.mu.Unlock()
	h.cancel(nil)
}

// handBack queues a held job to be released at the end of shutdown; it
// stays held (its lease extended) until then. interrupted says its handler
// ran and was cut short.
func (p *Pool) handBack(h *held, interrupted bool) {
	p.mu.Lock()
	p.handOff = append(p.handOff, h.lease.Ref())
	if interrupted {
		p.interrupted = append(p.interrupted, h.lease.Job.ID)
	}
	p.mu.Unlock()
}

// finish writes outcomes in batches until the outcome channel is closed and
// every outcome is written (or the backend stays down past shutdown).
//
// A batch spans queues, and on a Redis Cluster their masters fail on their
// own: the outcomes that could not be written are kept and retried with
// backoff, while new ones go on being written in batches of their own, so a
// master down delays only the outcomes of its queues. Every outcome's job
// stays held, its lease extended by the heartbeat, until it is written: if
// it never is (shutdown with the backend down), the lease expires and the job
// runs again: at-least-once.
func (p *Pool) finish() {
	defer close(p.finisher)
	const maxBatch = 512
	buf := make([]finished, 0, maxBatch) // the batch read from p.outcomes
	var outs []Outcome                   // its outcomes, as recordFinish takes them
	var jobs []*Job                      // and their jobs
	var retry []finished                 // outcomes whose write failed
	backoff := time.Duration(0)
	var retryAt <-chan time.Time
	in := p.outcomes
	for in != nil || len(retry) > 0 {
		var batch []finished
		select {
		case f, ok := <-in:
			if !ok {
				in = nil
				continue
			}
			batch, in = drain(append(buf[:0], f), in, maxBatch)
		case <-retryAt:
			batch, retry, retryAt = retry, nil, nil
		case <-p.bgCtx.Done():
			return
		}
		var failed []finished
		outs, jobs, failed = p.write(batch, outs, jobs)
		if len(failed) == 0 {
			if retryAt == nil && len(retry) == 0 {
				backoff = 0
			}
			continue
		}
		retry = append(retry, failed...)
		if retryAt == nil {
			backoff = nextBackoff(backoff)
			retryAt = time.After(backoff)
		}
	}
}

// drain appends to batch, up to max, the outcomes in holds now, and
// returns in, or nil once it is closed.
func drain(batch []finished, in chan finished, max int) ([]finished, chan finished) {
	for len(batch) < max {
		select {
		case f, ok := <-in:
			if !ok {
				return batch, nil
			}
			batch = append(batch, f)
		default:
			return batch, in
		}
	}
	return batch, in
}

// write tries once to record a batch, drops the jobs whose outcome was
// written and returns the others (which may share batch's array). outs and
// jobs are scratch for the outcomes and their jobs; write returns them,
// grown if need be.
func (p *Pool) write(batch []finished, outs []Outcome, jobs []*Job) ([]Outcome, []*Job, []finished) {
	outs, jobs = outs[:0], jobs[:0]
	for _, f := range batch {
		outs = append(outs, f.o)
		jobs = append(jobs, f.h.lease.Job)
	}
	_, err := p.svc.recordFinish(p.bgCtx, outs, jobs)
	var fe *FinishError
	if err != nil && !errors.As(err, &fe) {
		return outs, jobs, batch // nothing known to be written: all again
	}
	var failed []finished
	for i, f := range batch {
		if fe != nil && fe.Unwritten[i] {
			failed = append(failed, f)
		} else {
			p.drop(f.h)
		}
	}
	return outs, jobs, failed
}

// heartbeat extends the leases of every held job every Lease/3 and cancels
// the jobs whose lease was lost.
func (p *Pool) heartbeat() {
	defer p.bg.Done()
	t := time.NewTicker(p.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-p.bgCtx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		hs := make([]*held, 0, len(p.held))
		refs := make([]Ref, 0, len(p.held))
		for h := range p.held {
			hs = append(hs, h)
			refs = append(refs, h.lease.Ref())
		}
		p.mu.Unlock()
		if len(refs) == 0 {
			continue
		}
		// A round never outlasts the interval: on a Redis Cluster with a
		// master down, go-redis would retry that master's part for longer
		// than a lease, and the next round (the other masters' extensions,
		// which their masters do write) would come too late.
		ctx, cancel := context.WithTimeout(p.bgCtx, p.cfg.Lease/3)
		ok, err := p.svc.broker.Extend(ctx, refs, p.cfg.Lease)
		cancel()
		if err != nil {
			p.svc.obs.BackendError("extend", err)
			continue
		}
		for i, v := range ok {
			if !v {
				// Why it was lost takes a read; the next round of the jobs
				// still held does not wait for it, and Shutdown does (as
				// for the other background loops, until its end).
				p.bg.Add(1)
				go func(h *held, id string) {
					defer p.bg.Done()
					h.cancel(p.svc.lostCause(p.bgCtx, id))
				}(hs[i], refs[i].ID)
			}
		}
	}
}

// tick runs Service.Tick every TickInterval.
func (p *Pool) tick() {
	defer p.bg.Done()
	t := time.NewTicker(p.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-p.bgCtx.Done():
			return
		case <-t.C:
			_, _ = p.svc.Tick(p.bgCtx)
		}
	}
}
