// Package membroker is the in-process queue.Broker: for one daemon, zero
// setup. Jobs live in maps and lists under one mutex; finished jobs are kept
// up to a bounded history per queue, and dead jobs up to a bound of their own.
package membroker

import (
	"container/heap"
	"container/list"
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
)

var _ queue.Broker = (*Broker)(nil)

// Options configure a Broker.
type Options struct {
	Clock        queue.Clock // the system clock when nil
	HistoryLimit int         // succeeded and cancelled jobs kept per queue, and dead jobs (JOB_HISTORY); 200 when 0
}

// DefaultHistoryLimit is the number of succeeded and cancelled jobs kept
// per queue, and of dead jobs.
const DefaultHistoryLimit = 200

// Broker is the memory broker. The zero value is not usable; call New.
type Broker struct {
	clock   queue.Clock
	history int

	mu     sync.Mutex
	jobs   map[string]*entry
	queues map[string]*qstate
	names  []string // sorted queue names
	rr     int      // round-robin start for Fetch
	wake   chan struct{}
}

// entry is a stored job with its fencing token and a sequence number that
// changes with every move (see item). A scheduled or retrying job's entry is
// also in its queue's timeHeap, at index, ordered by at.
type entry struct {
	job   queue.Job
	token int64
	seq   uint64
	at    int64 // run_at in unix ms, while in a timeHeap
	index int   // place in its timeHeap; -1 when in none
}

type qstate struct {
	pending   deque
	scheduled timeHeap
	retry     timeHeap
	running   map[string]struct{}
	history   finishedSet // succeeded and cancelled jobs
	dead      finishedSet // dead jobs: successes never push them out
	count     map[queue.Status]int64
	enqueued  int64
	started   int64
	succeeded int64
	failed    int64
	paused    bool // Fetch skips the queue (SetPaused)
	idem      idemRecords
}

// New returns an empty memory broker.
func New(opts Options) *Broker {
	if opts.Clock == nil {
		opts.Clock = queue.SystemClock{}
	}
	if opts.HistoryLimit <= 0 {
		opts.HistoryLimit = DefaultHistoryLimit
	}
	return &Broker{
		clock:   opts.Clock,
		history: opts.HistoryLimit,
		jobs:    map[string]*entry{},
		queues:  map[string]*qstate{},
		wake:    make(chan struct{}),
	}
}

// now is the broker's time at millisecond precision, as Redis keeps it.
func (b *Broker) now() time.Time { return time.UnixMilli(b.clock.Now().UnixMilli()).UTC() }

func (b *Broker) queue(name string) *qstate {
	q, ok := b.queues[name]
	if !ok {
		q = &qstate{
			running: map[string]struct{}{},
			history: newFinishedSet(),
			dead:    newFinishedSet(),
			count:   map[queue.Status]int64{},
		}
		b.queues[name] = q
		b.names = append(b.names, name)
		sort.Strings(b.names)
	}
	return q
}

// set moves e to status to, keeping the counts and invalidating old items.
// A job leaving scheduled or failed leaves its heap here, whatever moved it
// (promote has popped it already), so no path can leave it behind; one
// leaving pending may leave a stale item in the deque, for compactPending.
func (b *Broker) set(q *qstate, e *entry, to queue.Status) {
	from := e.job.Status
	switch from {
	case queue.StatusScheduled:
		q.scheduled.remove(e)
	case queue.StatusFailed:
		q.retry.remove(e)
	}
	if from != "" {
		q.count[from]--
	}
	q.count[to]++
	e.job.Status = to
	e.seq++
	if from == queue.StatusPending {
		b.compactPending(q)
	}
}

// compactPending drops q's stale pending items once they outnumber the live
// ones. A pending job cancelled or run by id stays in the deque as a stale
// item (taking it out of the middle of a slice would cost O(n) per job);
// every live pending job has one live item, so the stale ones are the
// deque's length less the pending count. A compaction costs the length, at
// most twice the stale items made since the last one: O(1) per cancel,
// amortized, and the deque never holds more than twice the pending jobs,
// plus one.
func (b *Broker) compactPending(q *qstate) {
	live := q.count[queue.StatusPending]
	if int64(q.pending.len()) <= 2*live {
		return
	}
	q.pending.keep(int(live), func(it item) bool {
		_, ok := b.live(it)
		return ok
	})
}

// live returns the job of pending item it, unless it is stale (its job
// moved on, or gone, since the item was made).
func (b *Broker) live(it item) (*entry, bool) {
	e, ok := b.jobs[it.id]
	return e, ok && e.seq == it.seq
}

// notify wakes every Fetch waiting for a pending job.
func (b *Broker) notify() {
	close(b.wake)
	b.wake = make(chan struct{})
}

func (b *Broker) pushPending(q *qstate, e *entry) {
	q.pending.pushBack(item{id: e.job.ID, seq: e.seq})
}

// pushTimed puts e, just moved to scheduled or failed, in heap h by its run_at.
func pushTimed(h *timeHeap, e *entry) {
	e.at = e.job.RunAt.UnixMilli()
	heap.Push(h, e)
}

// Enqueue stores new jobs.
func (b *Broker) Enqueue(ctx context.Context, jobs ...queue.NewJob) error {
	if err := ctx.Err(); err != nil {
		return err // as on Redis: a caller that gave up stores nothing
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, nj := range jobs {
		if _, dup := b.jobs[nj.ID]; dup {
			return core.Errorf(core.CodeConflict, "job %s already exists", nj.ID)
		}
	}
	now := b.now()
	replays, err := b.checkKeys(jobs, now)
	if err != nil {
		return err
	}
	woke := false
	for i, nj := range jobs {
		if replays != nil && replays[i] != "" {
			nj.Idem.Existing = replays[i]
			continue
		}
		j := nj.Job
		q := b.queue(j.Queue)
		if nj.Idem != nil {
			q.idem.record(nj.Idem, j.ID, now)
		}
		j.EnqueuedAt = now
		e := &entry{index: -1}
		if !nj.At.IsZero() {
			j.RunAt = nj.At.Truncate(time.Millisecond).UTC()
			j.Status = queue.StatusScheduled
		} else if nj.Delay > 0 {
			j.RunAt = now.Add(nj.Delay.Truncate(time.Millisecond))
			j.Status = queue.StatusScheduled
		} else {
			j.RunAt, j.ReadyAt = now, now
			j.Status = queue.StatusPending
		}
		e.job = *j
		e.job.Status = ""
		b.set(q, e, j.Status)
		b.jobs[j.ID] = e
		q.enqueued++
		if j.Status == queue.StatusScheduled {
			pushTimed(&q.scheduled, e)
		} else {
			b.pushPending(q, e)
			woke = true
		}
	}
	if woke {
		b.notify()
	}
	return nil
}

// Get returns one job.
func (b *Broker) Get(_ context.Context, id string) (*queue.Job, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.jobs[id]
	if !ok {
		return nil, notFound(id)
	}
	j := e.job
	return &j, nil
}

func notFound(id string) error { return core.Errorf(core.CodeNotFound, "job %s not found", id) }

func conflict(id string, st queue.Status, what string) error {
	return core.Errorf(core.CodeConflict, "job %s is %s: cannot %s it", id, st, what)
}

// Queues returns the queue names.
func (b *Broker) Queues(context.Context) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.names...), nil
}

// Fetch takes up to req.N pending jobs, waiting up to req.Wait for one
// unless it left one pending for want of a free worker (req.Ahead).
func (b *Broker) Fetch(ctx context.Context, req queue.FetchRequest) ([]queue.Lease, error) {
	var timer *time.Timer
	for {
		b.mu.Lock()
		leases, held := b.take(req)
		wake := b.wake
		b.mu.Unlock()
		if req.Held != nil {
			*req.Held = held
		}
		if len(leases) > 0 || held != "" || req.Wait <= 0 {
			if timer != nil {
				timer.Stop()
			}
			return leases, nil
		}
		if timer == nil {
			timer = time.NewTimer(req.Wait)
			defer timer.Stop()
		}
		select {
		case <-wake:
		case <-timer.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// take starts up to req.N pending jobs, visiting req.Prefer first, then
// the queues round-robin (in the order given, with req.Ordered). Once it
// has taken the req.N-req.Ahead that start at once, a queue whose head job
// is on its last try gives no more (held names the first such queue; with
// req.Strict, the fetch ends there).
func (b *Broker) take(req queue.FetchRequest) (leases []queue.Lease, held string) {
	names := req.Queues
	if len(names) == 0 {
		names = b.names
	}
	if len(names) == 0 || req.N <= 0 {
		return nil, ""
	}
	now := b.now()
	ready := req.N - max(req.Ahead, 0)
	b.rr++
	rr := b.rr
	if req.Ordered {
		rr = 0
	}
	prefer := req.Prefer
	if prefer != "" && !slices.Contains(names, prefer) {
		prefer = ""
	}
	first := 0 // visits prefer first when there is one, then the others round-robin
	if prefer != "" {
		first = -1
	}
	for i := first; i < len(names); i++ {
		if len(leases) >= req.N || held != "" && req.Strict {
			break // strict: nothing of a later queue before the held job
		}
		name := prefer
		if i >= 0 {
			if name = names[(rr+i)%len(names)]; name == prefer {
				continue
			}
		}
		q, ok := b.queues[name]
		if !ok || q.paused {
			continue
		}
		for len(leases) < req.N {
			e := b.peekPending(q)
			if e == nil {
				break
			}
			if len(leases) >= ready && queue.LastTry(e.job.Retries, e.job.MaxRetries) {
				if held == "" {
					held = name
				}
				break
			}
			q.pending.pop()
			leases = append(leases, b.start(q, e, now, req.Lease))
		}
	}
	return leases, held
}

// peekPending returns the oldest live pending entry of q, dropping the
// stale items before it, and leaves it at the head.
func (b *Broker) peekPending(q *qstate) *entry {
	for {
		it, ok := q.pending.peek()
		if !ok {
			return nil
		}
		if e, ok := b.live(it); ok {
			return e
		}
		q.pending.pop()
	}
}

// start moves e to running under a new lease and token.
func (b *Broker) start(q *qstate, e *entry, now time.Time, lease time.Duration) queue.Lease {
	b.set(q, e, queue.StatusRunning)
	e.token++
	e.job.Attempts++
	e.job.StartedAt = now
	e.job.LeaseUntil = now.Add(lease.Truncate(time.Millisecond))
	q.running[e.job.ID] = struct{}{}
	q.started++
	j := e.job
	return queue.Lease{Job: &j, Token: e.token}
}

// Claim starts one pending, scheduled or failed job now.
func (b *Broker) Claim(_ context.Context, id string, lease time.Duration) (queue.Lease, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.jobs[id]
	if !ok {
		return queue.Lease{}, notFound(id)
	}
	switch e.job.Status {
	case queue.StatusPending, queue.StatusScheduled, queue.StatusFailed:
	default:
		return queue.Lease{}, conflict(id, e.job.Status, "run")
	}
	now := b.now()
	if e.job.Status != queue.StatusPending {
		// Not yet due: the claim makes it ready, now (a handed-back job's
		// age in pending counts from here).
		e.job.ReadyAt = now
	}
	return b.start(b.queues[e.job.Queue], e, now, lease), nil
}

// holder returns the entry ref holds, or nil when its lease is gone.
func (b *Broker) holder(ref queue.Ref) *entry {
	e, ok := b.jobs[ref.ID]
	if !ok || e.job.Status != queue.StatusRunning || e.token != ref.Token {
		return nil
	}
	return e
}

// Extend renews leases.
func (b *Broker) Extend(_ context.Context, refs []queue.Ref, lease time.Duration) ([]bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	ok := make([]bool, len(refs))
	for i, ref := range refs {
		if e := b.holder(ref); e != nil {
			e.job.LeaseUntil = now.Add(lease.Truncate(time.Millisecond))
			ok[i] = true
		}
	}
	return ok, nil
}

// Finish records run outcomes.
func (b *Broker) Finish(_ context.Context, outcomes []queue.Outcome) ([]queue.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	to := make([]queue.Status, len(outcomes))
	for i, o := range outcomes {
		e := b.holder(o.Ref)
		if e == nil {
			continue
		}
		q := b.queues[e.job.Queue]
		delete(q.running, e.job.ID)
		e.job.LeaseUntil = time.Time{}
		j := &e.job
		switch {
		case o.Err == "" && (j.IntervalSeconds > 0 || (!o.NextRunAt.IsZero() && j.Cron != "")):
			q.succeeded++
			j.Result, j.FinishedAt, j.Retries, j.Source = o.Result, now, 0, queue.SourceSchedule
			j.RunAt = now.Add(time.Duration(j.IntervalSeconds) * time.Second)
			if !o.NextRunAt.IsZero() {
				j.RunAt = o.NextRunAt.Truncate(time.Millisecond).UTC() // a cron job's next occurrence
			}
			b.set(q, e, queue.StatusScheduled)
			pushTimed(&q.scheduled, e)
		case o.Err == "":
			q.succeeded++
			j.Result, j.FinishedAt = o.Result, now
			b.set(q, e, queue.StatusSucceeded)
			b.addHistory(q, e)
		default:
			q.failed++
			j.Retries++
			j.LastError = o.Err
			b.failed(q, e, now, o.RetryIn, o.NoRetry)
			if j.Status == queue.StatusFailed {
				j.Source = queue.SourceRetry
			}
		}
		to[i] = e.job.Status
	}
	return to, nil
}

// failed moves a job whose attempt failed to failed (retry after retryIn) or
// dead (no retries left, or noRetry: a failure not to retry).
func (b *Broker) failed(q *qstate, e *entry, now time.Time, retryIn time.Duration, noRetry bool) {
	j := &e.job
	if noRetry || queue.Exhausted(j.Retries, j.MaxRetries) {
		j.FinishedAt = now
		b.set(q, e, queue.StatusDead)
		b.addHistory(q, e)
		return
	}
	j.RunAt = now.Add(retryIn.Truncate(time.Millisecond))
	b.set(q, e, queue.StatusFailed)
	pushTimed(&q.retry, e)
}

// finishedSet is an ordered set of finished jobs' ids, oldest first.
type finishedSet struct {
	order *list.List
	at    map[string]*list.Element
}

func newFinishedSet() finishedSet {
	return finishedSet{order: list.New(), at: map[string]*list.Element{}}
}

// add puts id last, once.
func (s finishedSet) add(id string) {
	if el, ok := s.at[id]; ok {
		s.order.MoveToBack(el)
	} else {
		s.at[id] = s.order.PushBack(id)
	}
}

func (s finishedSet) remove(id string) {
	if el, ok := s.at[id]; ok {
		s.order.Remove(el)
		delete(s.at, id)
	}
}

// addHistory records a finished job, once: a dead job among the queue's
// dead, any other in its history, each set capped at JOB_HISTORY, the
// oldest beyond it evicted. Successes and cancellations so never push a
// dead job out, only newer dead jobs do.
func (b *Broker) addHistory(q *qstate, e *entry) {
	set, other := q.history, q.dead
	if e.job.Status == queue.StatusDead {
		set, other = q.dead, q.history
	}
	other.remove(e.job.ID)
	set.add(e.job.ID)
	for set.order.Len() > b.history {
		id := set.order.Front().Value.(string)
		set.remove(id)
		if old, ok := b.jobs[id]; ok {
			q.count[old.job.Status]--
			delete(b.jobs, id)
		}
	}
}

func (b *Broker) removeHistory(q *qstate, id string) {
	q.history.remove(id)
	q.dead.remove(id)
}

// Release hands running jobs back to the head of their queue.
func (b *Broker) Release(_ context.Context, refs []queue.Ref) ([]bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ok := make([]bool, len(refs))
	// Push in reverse so that the first ref ends up first in line.
	for i := len(refs) - 1; i >= 0; i-- {
		e := b.holder(refs[i])
		if e == nil {
			continue
		}
		q := b.queues[e.job.Queue]
		delete(q.running, e.job.ID)
		e.job.LeaseUntil = time.Time{}
		e.job.Attempts--
		b.set(q, e, queue.StatusPending)
		q.pending.pushFront(item{id: e.job.ID, seq: e.seq})
		ok[i] = true
	}
	b.notify()
	return ok, nil
}

// Cancel cancels a job that has not finished.
func (b *Broker) Cancel(_ context.Context, id string) (*queue.Job, queue.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.jobs[id]
	if !ok {
		return nil, "", notFound(id)
	}
	from := e.job.Status
	switch from {
	case queue.StatusPending, queue.StatusScheduled, queue.StatusFailed, queue.StatusRunning:
	default:
		return nil, from, conflict(id, from, "cancel")
	}
	q := b.queues[e.job.Queue]
	delete(q.running, id)
	e.job.LeaseUntil = time.Time{}
	e.job.FinishedAt = b.now()
	b.set(q, e, queue.StatusCancelled)
	b.addHistory(q, e)
	j := e.job
	return &j, from, nil
}

// Requeue puts a dead or cancelled job back in line.
func (b *Broker) Requeue(_ context.Context, id string) (*queue.Job, queue.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.jobs[id]
	if !ok {
		return nil, "", notFound(id)
	}
	from := e.job.Status
	if from != queue.StatusDead && from != queue.StatusCancelled {
		return nil, from, conflict(id, from, "requeue")
	}
	b.requeue(b.queues[e.job.Queue], e, b.now())
	b.notify()
	j := e.job
	return &j, from, nil
}

// requeue moves a dead or cancelled job of q to the tail of pending, its
// retries reset (Requeue, RequeueDead). b.mu is held.
func (b *Broker) requeue(q *qstate, e *entry, now time.Time) {
	b.removeHistory(q, e.job.ID)
	e.job.Retries = 0
	e.job.RunAt, e.job.ReadyAt, e.job.FinishedAt = now, now, time.Time{}
	b.set(q, e, queue.StatusPending)
	b.pushPending(q, e)
}

// RequeueDead moves a queue's dead jobs that died at or before the cut back
// to pending, oldest death first (ties by id, as Redis orders them), at
// most limit, all under one lock. The dead set holds only dead jobs (every
// move out of it goes through requeue); the status check is a guard.
func (b *Broker) RequeueDead(_ context.Context, name string, before time.Time, limit int) (queue.RequeueDeadResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, ok := b.queues[name]
	if !ok {
		return queue.RequeueDeadResult{}, queue.QueueNotFoundError(name)
	}
	now := b.now()
	res := queue.RequeueDeadResult{Cut: queue.DeadCut(before, now)}
	var due []*entry
	for el := q.dead.order.Front(); el != nil; el = el.Next() {
		if e, ok := b.jobs[el.Value.(string)]; ok && e.job.Status == queue.StatusDead && !e.job.FinishedAt.After(res.Cut) {
			due = append(due, e)
		}
	}
	// The set is in order of death unless the clock stepped back.
	slices.SortStableFunc(due, func(x, y *entry) int {
		if c := x.job.FinishedAt.Compare(y.job.FinishedAt); c != 0 {
			return c
		}
		return strings.Compare(x.job.ID, y.job.ID)
	})
	if n := max(0, limit); n < len(due) {
		res.Remaining = len(due) - n
		due = due[:n]
	}
	for _, e := range due {
		b.requeue(q, e, now)
		res.IDs = append(res.IDs, e.job.ID)
	}
	if len(due) > 0 {
		b.notify()
	}
	return res, nil
}

// RemoveQueue deletes an empty queue with its finished jobs.
func (b *Broker) RemoveQueue(_ context.Context, name string) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, ok := b.queues[name]
	if !ok {
		return 0, queue.QueueNotFoundError(name)
	}
	pending, scheduled := q.count[queue.StatusPending], q.count[queue.StatusScheduled]
	retry, running := q.count[queue.StatusFailed], q.count[queue.StatusRunning]
	if pending+scheduled+retry+running > 0 {
		return 0, queue.QueueBusyError(name, pending, scheduled, retry, running)
	}
	for _, set := range []finishedSet{q.history, q.dead} {
		for el := set.order.Front(); el != nil; el = el.Next() {
			delete(b.jobs, el.Value.(string))
		}
	}
	delete(b.queues, name)
	b.names = slices.DeleteFunc(b.names, func(n string) bool { return n == name }) // read only under mu, as here
	return q.history.order.Len() + q.dead.order.Len(), nil
}

// SetPaused pauses or resumes a queue; a resume wakes the fetchers.
func (b *Broker) SetPaused(_ context.Context, name string, paused bool) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, ok := b.queues[name]
	if !ok {
		return false, queue.QueueNotFoundError(name)
	}
	if q.paused == paused {
		return false, nil
	}
	q.paused = paused
	if !paused {
		b.notify()
	}
	return true, nil
}

// Tick promotes due jobs and recovers expired leases.
func (b *Broker) Tick(context.Context) (queue.TickResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var r queue.TickResult
	for _, name := range b.names {
		q := b.queues[name]
		r.Scheduled += b.promote(q, &q.scheduled, now)
		r.Retried += b.promote(q, &q.retry, now)
		for _, id := range sortedKeys(q.running) {
			e := b.jobs[id]
			if e.job.LeaseUntil.After(now) {
				continue
			}
			delete(q.running, id)
			e.job.LeaseUntil = time.Time{}
			e.job.Retries++
			e.job.LastError = queue.LeaseExpired
			q.failed++
			if queue.Exhausted(e.job.Retries, e.job.MaxRetries) {
				e.job.FinishedAt = now
				b.set(q, e, queue.StatusDead)
				r.Dead = append(r.Dead, queue.DeadJob{ID: id, Queue: name, Type: e.job.Type, Attempts: e.job.Attempts, LastError: e.job.LastError})
				b.addHistory(q, e)
				r.RecoveredDead++
				continue
			}
			e.job.ReadyAt = now
			b.set(q, e, queue.StatusPending)
			b.pushPending(q, e)
			r.Recovered++
		}
	}
	if r.Scheduled+r.Retried+r.Recovered > 0 {
		b.notify()
	}
	return r, nil
}

func sortedKeys(m map[string]struct{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// promote moves the due jobs of h to pending.
func (b *Broker) promote(q *qstate, h *timeHeap, now time.Time) int {
	n := 0
	for h.Len() > 0 && (*h)[0].at <= now.UnixMilli() {
		e := heap.Pop(h).(*entry)
		e.job.ReadyAt = e.job.RunAt
		b.set(q, e, queue.StatusPending)
		b.pushPending(q, e)
		n++
	}
	return n
}

// StatsMany returns the Stats of each of queues.
func (b *Broker) StatsMany(ctx context.Context, queues []string) ([]queue.Stats, error) {
	out := make([]queue.Stats, len(queues))
	for i, q := range queues {
		out[i], _ = b.Stats(ctx, q) // never fails
	}
	return out, nil
}

// Stats returns one queue's gauges and totals.
func (b *Broker) Stats(_ context.Context, name string) (queue.Stats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := queue.Stats{Queue: name}
	q, ok := b.queues[name]
	if !ok {
		return s, nil
	}
	s.Pending = q.count[queue.StatusPending]
	s.Running = q.count[queue.StatusRunning]
	s.Scheduled = q.count[queue.StatusScheduled]
	s.Retry = q.count[queue.StatusFailed]
	s.Dead = q.count[queue.StatusDead]
	s.Enqueued, s.Started, s.Succeeded, s.Failed = q.enqueued, q.started, q.succeeded, q.failed
	s.Paused = q.paused
	for {
		it, ok := q.pending.peek()
		if !ok {
			break
		}
		if e, ok := b.live(it); ok {
			s.OldestPendingAge = max(0, b.now().Sub(e.job.ReadyAt))
			break
		}
		q.pending.pop()
	}
	s.OldestPendingSec = s.OldestPendingAge.Seconds()
	return s, nil
}

// List returns jobs matching f.
func (b *Broker) List(_ context.Context, f queue.Filter) ([]*queue.Job, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	limit := f.Limit
	if limit <= 0 {
		limit = queue.DefaultListLimit
	}
	names := b.names
	if f.Queue != "" {
		names = []string{f.Queue}
	}
	// The page at offset O is positions O.. of the listing cut at O+limit:
	// read that listing, then skip O. One queue's pending, scheduled or
	// failed jobs are walked in the order they are listed in, so the first
	// O are passed over uncopied (review cr33: a page 99,000 deep copied
	// them all under the broker's lock).
	offset := max(0, f.Offset)
	skip := 0
	if len(names) == 1 && f.Status.Waiting() {
		skip = offset
	}
	var out []*queue.Job
	for _, name := range names {
		q, ok := b.queues[name]
		if !ok {
			continue
		}
		out = append(out, b.list(q, f.Status, skip, offset+limit)...)
	}
	if f.Status != queue.StatusPending || len(names) > 1 {
		queue.SortRecentFirst(out, f.Status)
	}
	return queue.Page(out, offset-skip, limit), nil
}

// list returns up to limit jobs of one queue in status st ("" for any),
// the first skip of each category passed over (not copied), and, of a
// finished set cut at limit, the jobs that finished at the same time as the
// last one too.
func (b *Broker) list(q *qstate, st queue.Status, skip, limit int) []*queue.Job {
	// Each category contributes at most limit jobs; the caller sorts and cuts.
	var out []*queue.Job
	n := 0
	add := func(e *entry) bool {
		if st == "" || e.job.Status == st {
			if n >= skip {
				j := e.job
				out = append(out, &j)
			}
			n++
		}
		return n < limit
	}
	if st == "" || st == queue.StatusPending {
		n = 0
		q.pending.each(func(it item) bool {
			if e, ok := b.live(it); ok {
				return add(e)
			}
			return true
		})
	}
	for _, h := range []struct {
		st queue.Status
		h  timeHeap
	}{{queue.StatusScheduled, q.scheduled}, {queue.StatusFailed, q.retry}} {
		if st != "" && st != h.st {
			continue
		}
		// The earliest first, walked in place: copying and sorting the
		// heap would cost O(n log n) under the broker's lock for every
		// listing.
		n = 0
		h.h.earliest(add)
	}
	if st == "" || st == queue.StatusRunning {
		// Every running job, as the Redis broker reads them (there are
		// at most as many as workers): the latest started are listed first,
		// and a running job's id says nothing of when it started.
		for _, id := range sortedKeys(q.running) {
			add(b.jobs[id])
		}
	}
	// Dead jobs have a set of their own; a listing of every status reads
	// both (the caller sorts and cuts).
	var sets []finishedSet
	switch {
	case st == "":
		sets = []finishedSet{q.history, q.dead}
	case st == queue.StatusDead:
		sets = []finishedSet{q.dead}
	case st.Finished():
		sets = []finishedSet{q.history}
	}
	for _, set := range sets {
		n = 0
		full := false
		var cut time.Time // when the last job added at the cut finished
		for el := set.order.Back(); el != nil; el = el.Prev() {
			e := b.jobs[el.Value.(string)]
			// Past the cut, those tied with the last job at it: the caller
			// orders ties by id, so the cut must not pick among them by
			// the order they were added in, or pages repeat some and skip
			// others (review cr33 HIGH-1).
			if full && !e.job.FinishedAt.Equal(cut) {
				break
			}
			if !add(e) && !full {
				full, cut = true, e.job.FinishedAt
			}
		}
	}
	return out
}

// Ping always succeeds: memory is always there.
func (b *Broker) Ping(context.Context) error { return nil }
