// Package redisbroker is the queue.Broker on Redis, shared by any number of
// daemons and CLIs. Every state change is one Lua script on the keys of one
// queue (see scripts.go for the layout and each script's KEYS, ARGV and
// reply); an idle fetch blocks on a wake-up list instead of polling.
package redisbroker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/redispipe"
)

var _ queue.Broker = (*Broker)(nil)

// DefaultPrefix starts every key refrakt writes (REFRAKT_PREFIX).
const DefaultPrefix = "refrakt:"

// DefaultHistoryLimit is the number of succeeded and cancelled jobs kept
// per queue, and of dead jobs.
const DefaultHistoryLimit = 200

// wakeBacklog bounds the wake-up list: enough to wake every idle fetcher of
// a busy deployment, small enough that leftover tokens cost nothing.
const wakeBacklog = 64

// maxBlock is the longest a Fetch blocks in one BLPOP; go-redis counts
// blocking timeouts in whole seconds.
const maxBlock = time.Second

// Options configure a Broker.
type Options struct {
	// Prefix of every key; DefaultPrefix when empty.
	Prefix string
	// HistoryLimit is the number of succeeded and cancelled jobs kept per
	// queue, and of dead jobs (JOB_HISTORY).
	HistoryLimit int
	// Clock, when set, replaces Redis TIME in every script: for tests only,
	// since daemons sharing a Redis must share its clock.
	Clock queue.Clock
	// SweepInterval is how often Tick sweeps Redis for queues missing from
	// the index (relist.go); DefaultSweepInterval when 0, never when
	// negative.
	SweepInterval time.Duration
}

// Broker is the Redis broker.
type Broker struct {
	rdb     redis.UniversalClient
	prefix  string
	history int
	clock   queue.Clock

	// single: the client talks to one server (no cluster, no ring), so a
	// script may touch keys beyond its queue's: enqueueScript pushes the
	// wake-up and lists the queue, removeScript unlists it, and
	// locateScript reads every queue, instead of separate commands or a
	// command per queue.
	single bool
	// keyCache maps the queues this broker has seen in the index to their
	// keys (*keys): being in it is being known. Written under mu (addName),
	// read without it.
	keyCache sync.Map

	// enq is the enqueues' group commit on a single server; on a
	// cluster, lanes holds one per master (by address), and enq serves
	// the calls whose master the client cannot tell.
	enq   enqLane
	lanes sync.Map // string → *enqLane
	// sig holds a cluster's wake-ups and listings of new queues still to
	// send (signal).
	sig signals
	// down are a cluster's masters whose fetches or ticks failed, left
	// alone until they answer again (downmasters.go).
	down downMasters

	// cmdTimeout is how long a caller waits at most for one command (the
	// client's read timeout); offset is Redis's clock minus ours, for the
	// scripts' "not after" deadlines (deadline.go).
	cmdTimeout time.Duration
	offset     clockOffset

	mu     sync.Mutex
	names  []string  // sorted: the names in keyCache
	synced time.Time // when names was last read from the index
	rr     int
	// gen orders the reads of the index and the names this broker adds
	// itself: a read replaces names with what it found plus the names
	// added since it started (added, by gen), unless a read started later
	// was applied first (applied).
	gen, applied uint64
	added        map[string]uint64
	// recheck are queues whose listing failed; sweepAt is when Tick sweeps
	// for unlisted queues next (relist.go).
	recheck    map[string]uint64 // queue → the failure that put it there
	recheckSeq uint64
	sweepEvery time.Duration
	sweepAt    time.Time
	sweepWait  time.Duration // after a failed sweep
	sweeping   bool
}

// New returns a broker on rdb.
func New(rdb redis.UniversalClient, opts Options) *Broker {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.HistoryLimit <= 0 {
		opts.HistoryLimit = DefaultHistoryLimit
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	_, single := rdb.(*redis.Client)
	b := &Broker{rdb: rdb, prefix: opts.Prefix, history: opts.HistoryLimit, clock: opts.Clock, single: single,
		sweepEvery: opts.SweepInterval, cmdTimeout: commandTimeout(rdb)}
	b.offset.last.Store(time.Now().UnixMilli())
	return b
}

// Load loads every script into Redis, so the first calls need no fallback,
// and reads Redis's clock, so the first calls have a deadline (deadline.go).
// Scripts are run with EVALSHA and reloaded after NOSCRIPT (a restart), and
// the clock is learnt from the scripts' replies too, so calling Load is an
// optimisation, not a requirement.
func (b *Broker) Load(ctx context.Context) error {
	for _, s := range allScripts {
		if err := s.Load(ctx, b.rdb).Err(); err != nil {
			return fmt.Errorf("load queue scripts: %w", err)
		}
	}
	if b.clock == nil {
		sent := time.Now()
		if t, err := b.rdb.Time(ctx).Result(); err == nil {
			b.learn(t.UnixMilli(), sent, time.Now())
		}
	}
	return nil
}

var allScripts = []*script{enqueueScript, dequeueScript, claimScript, extendScript, finishScript, releaseScript, cancelScript, requeueScript, requeueDeadScript, tickScript, statsScript, removeScript, pauseScript, finishedScript, locateScript}

// keys names the keys of one queue.
type keys struct {
	pending, scheduled, retry, running, history, dead, stats, job, paused string
	// enqueue is the KEYS of enqueueScript: pending, scheduled, stats, job
	// prefix, the wake-up list and the queue index (the last two only on a
	// single server).
	enqueue [6]string
}

// keys returns the keys of queue q: cached for the queues of the index
// (addName stores them), built afresh for any other name, so names that
// callers merely ask about (List, Fetch) do not grow the cache.
func (b *Broker) keys(q string) *keys {
	if k, ok := b.keyCache.Load(q); ok {
		return k.(*keys)
	}
	return b.newKeys(q)
}

// every returns all the keys of the queue, in the order tickScript and
// removeScript take them (tickScript ignores the paused flag, last).
func (k *keys) every() []string {
	return []string{k.pending, k.scheduled, k.retry, k.running, k.history, k.dead, k.stats, k.job, k.paused}
}

func (b *Broker) newKeys(q string) *keys {
	p := b.prefix + "q:{" + q + "}:"
	k := &keys{pending: p + "pending", scheduled: p + "scheduled", retry: p + "retry", running: p + "running",
		history: p + "history", dead: p + "dead", stats: p + "stats", job: p + "j:", paused: p + "paused"}
	k.enqueue = [6]string{k.pending, k.scheduled, k.stats, k.job, b.wakeKey(), b.indexKey()}
	return k
}

func (b *Broker) indexKey() string { return b.prefix + "queues" }
func (b *Broker) wakeKey() string  { return b.prefix + "wake" }

// historyLimitKey holds the JOB_HISTORY a daemon on this Redis last
// published (see PublishSettings).
func historyLimitKey(prefix string) string { return prefix + "job-history" }

// PublishSettings stores, for ttl, the settings of this broker's daemon
// that processes on this Redis without them must follow, in one round
// trip: the history limit (JOB_HISTORY), the admission bounds in c
// (QUEUE_MAX_PENDING, QUEUE_MAX_AGE_SECONDS) and the retry backoff bo
// (JOB_RETRY_BASE, JOB_RETRY_MAX), replacing what any daemon
// published before (the last writer wins). A daemon calls it periodically.
// The CLI over Redis runs the same scripts, which trim each queue's
// history to the limit they are given: it takes the daemons'
// (PublishedHistoryLimit) rather than its own environment's, so an
// operator's command never deletes finished jobs the daemons keep; and
// `refrakt top --redis` judges which queues the daemons refuse by their
// bounds (PublishedAdmission), having no admission control of its own;
// and `jobs run --redis`, which runs a job in the CLI, delays a failed
// one's retry by their backoff (PublishedBackoff) and bounds a job
// without a timeout_ms by their JOB_TIMEOUT (timeout, when above 0:
// PublishedJobTimeout).
func (b *Broker) PublishSettings(ctx context.Context, c queue.AdmissionConfig, bo queue.Backoff, timeout, ttl time.Duration) error {
	adm, err := json.Marshal(publishedAdmission{MaxPending: c.MaxPending, MaxAgeMS: c.MaxAge.Milliseconds()})
	if err != nil {
		return err
	}
	retry, err := json.Marshal(publishedBackoff{BaseNS: int64(bo.Base), MaxNS: int64(bo.Cap)})
	if err != nil {
		return err
	}
	pipe := b.rdb.Pipeline()
	pipe.Set(ctx, historyLimitKey(b.prefix), strconv.Itoa(b.history), ttl)
	pipe.Set(ctx, admissionKey(b.prefix), adm, ttl)
	pipe.Set(ctx, backoffKey(b.prefix), retry, ttl)
	if timeout > 0 {
		// And JOB_TIMEOUT, which `jobs run --redis` bounds a job by when
		// the job names no timeout_ms (PublishedJobTimeout).
		tmo, err := json.Marshal(publishedJobTimeout{TimeoutNS: int64(timeout)})
		if err != nil {
			return err
		}
		pipe.Set(ctx, jobTimeoutKey(b.prefix), tmo, ttl)
	}
	_, err = redispipe.Exec(ctx, pipe)
	return err
}

// PublishedHistoryLimit returns the history limit a daemon on rdb last
// published, and false when none did within its TTL (or the value is not a
// positive number).
func PublishedHistoryLimit(ctx context.Context, rdb redis.UniversalClient, prefix string) (int, bool, error) {
	b, found, err := getPublished(ctx, rdb, historyLimitKey(prefix))
	if !found {
		return 0, false, err
	}
	n, ok := historyFrom(string(b))
	return n, ok, nil
}

// historyFrom decodes a published history limit: a positive number.
func historyFrom(v string) (int, bool) {
	n, err := strconv.Atoi(v)
	return n, err == nil && n > 0
}

// now is the "now" argument of the scripts: 0 (Redis TIME) unless a test clock is set.
func (b *Broker) now() int64 {
	if b.clock == nil {
		return 0
	}
	return b.clock.Now().UnixMilli()
}

// run runs one script as runAll does (EVAL after NOSCRIPT; on a cluster,
// sent again while its slot moves).
func (b *Broker) run(ctx context.Context, s *script, keys []string, args ...any) (any, error) {
	cmds, _ := b.runAll(ctx, []scriptCall{{s, keys, args}})
	return cmds[0].Result()
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

// Enqueue stores new jobs: one script per queue. A call that finds no other
// in flight sends its own jobs at once, in the caller's goroutine and under
// the caller's context: on a single server that is one EVALSHA (the script
// also pushes the wake-up), so one caller pays one plain round trip and no
// hand-off. Concurrent calls are coalesced (group commit; on a cluster, per
// master of their first job's queue: enqLane): while one round trip is in
// flight, others queue up and the next caller sends them all in one
// pipeline, one script per call and queue, so each call stays atomic and
// sees only its own errors.
//
// Each caller waits until its ctx ends or one command timeout has passed,
// whichever comes first, the wait behind another sender included; a caller
// that gives up before its jobs were sent takes them back (nothing is
// stored), one that gives up later gets an *queue.UncertainEnqueueError.
// Every script carries its caller's deadline ("not after", deadline.go), so
// a stalled Redis that runs it after the caller gave up stores nothing.
func (b *Broker) Enqueue(ctx context.Context, jobs ...queue.NewJob) error {
	if len(jobs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	start := time.Now()
	c := &enqCall{jobs: jobs, deadline: b.deadline(ctx, start)}
	c.lane = b.laneOf(ctx, jobs[0].Queue)
	l := c.lane
	l.mu.Lock()
	if !l.busy {
		l.busy = true
		l.mu.Unlock()
		b.sendOwn(ctx, c, start)
		return c.err
	}
	c.done, c.lead = make(chan struct{}), make(chan struct{})
	l.waiting = append(l.waiting, c)
	l.mu.Unlock()
	timer := time.NewTimer(time.Until(c.deadline))
	defer timer.Stop()
	for lead := c.lead; ; {
		select {
		case <-c.done:
			return c.err
		case <-lead: // the previous sender is done: send what waits
			lead = nil
			b.lead(ctx, l)
		case <-ctx.Done():
			return l.giveUp(c, ctx.Err())
		case <-timer.C:
			return l.giveUp(c, fmt.Errorf("no answer from Redis within %v", b.cmdTimeout))
		}
	}
}

// sendOwn sends the call c of a caller that found its lane idle, in the
// caller's goroutine and under its context, bounded by its deadline. The
// lane is handed over whatever happens: a panic here (recovered by the
// HTTP server) left the lane busy, and every later enqueue on it waiting
// out its timeout.
func (b *Broker) sendOwn(ctx context.Context, c *enqCall, start time.Time) {
	sctx, cancel := bounded(ctx, c.deadline)
	defer cancel()
	var made []string
	func() {
		defer c.lane.handOver()
		made = b.sendEnqueues(sctx, []*enqCall{c}, start)
	}()
	b.listMade(sctx, made)
}

// listMade lists in the queue index, on a cluster, the queues that jobs
// just stored made (their first jobs, or their first since RemoveQueue),
// before their callers are answered: on a single server the script lists
// them with the jobs; on a cluster the index lives in another slot, so
// they are listed once the jobs are stored (a removal running between the
// two finds either the jobs or the queue in the index: see RemoveQueue).
// It runs after the lane is handed over, within the callers' deadline:
// inside the lane's turn, a paused master of the index held up every
// enqueue of the lane's master. A listing that fails does not fail the
// enqueue (the jobs are stored): the queue is unknown again, and the next
// Tick lists it, and this broker's next enqueue there too (relist.go).
func (b *Broker) listMade(ctx context.Context, made []string) {
	if len(made) == 0 {
		return
	}
	if err := b.rdb.SAdd(ctx, b.indexKey(), toAny(made)...).Err(); err != nil {
		b.recheckLater(made...)
	}
}

// enqLane is a group commit of enqueues: one sender at a time, and the calls
// that come meanwhile wait for the next round trip, which takes them all.
// On a cluster each master has a lane of its own (laneOf), so that a master
// that does not answer holds up only the calls of its own queues: behind
// one sender for every queue, a round trip that waited for a paused master
// made every caller queued after it give up at its command timeout.
type enqLane struct {
	mu      sync.Mutex
	waiting []*enqCall // calls waiting for the next round trip
	busy    bool       // a caller is sending
}

// laneOf is the lane of the calls whose first job goes to queue q: on a
// cluster its master's, as far as the client knows the slots.
func (b *Broker) laneOf(ctx context.Context, q string) *enqLane {
	if b.single {
		return &b.enq
	}
	addr := b.masterOf(ctx, q)
	if addr == "" {
		return &b.enq
	}
	if l, ok := b.lanes.Load(addr); ok {
		return l.(*enqLane)
	}
	l, _ := b.lanes.LoadOrStore(addr, &enqLane{})
	return l.(*enqLane)
}

// handOver ends a sender's turn: the first waiting call (if any) becomes the
// next sender, so no caller serves others' calls forever.
func (l *enqLane) handOver() {
	l.mu.Lock()
	l.handOverLocked()
	l.mu.Unlock()
}

func (l *enqLane) handOverLocked() {
	if len(l.waiting) > 0 {
		close(l.waiting[0].lead)
	} else {
		l.busy = false
	}
}

// lead takes every call waiting in l (the leader's own first) and sends
// them in the background, so that the leader, like each of them, stops
// waiting at its own deadline.
func (b *Broker) lead(ctx context.Context, l *enqLane) {
	l.mu.Lock()
	batch := l.waiting
	l.waiting = nil
	for _, c := range batch {
		c.state = callSent
	}
	l.mu.Unlock()
	go b.flushEnqueues(context.WithoutCancel(ctx), l, batch)
}

// giveUp ends the wait of a queued call whose caller stops waiting for
// cause. A call not sent yet is withdrawn, so nothing of it is ever stored;
// a call sent but not answered may be stored (unless its deadline stops its
// script); a call already answered returns its answer.
func (l *enqLane) giveUp(c *enqCall, cause error) error {
	l.mu.Lock()
	switch c.state {
	case callWaiting:
		i := slices.Index(l.waiting, c)
		l.waiting = slices.Delete(l.waiting, i, i+1)
		c.state = callGone
		select {
		case <-c.lead: // it was made the next sender meanwhile: pass that on
			l.handOverLocked()
		default:
		}
		l.mu.Unlock()
		return fmt.Errorf("enqueue: %w (nothing stored)", cause)
	case callSent:
		c.state = callGone
		l.mu.Unlock()
		return &queue.UncertainEnqueueError{JobIDs: jobIDs(c.jobs), Err: fmt.Errorf("enqueue: %w", cause)}
	}
	l.mu.Unlock()
	<-c.done // answered: done is about to close
	return c.err
}

// enqCall is one Enqueue call waiting for its round trip.
type enqCall struct {
	jobs     []queue.NewJob
	deadline time.Time // when its caller stops waiting
	lane     *enqLane  // the group commit it goes through
	err      error
	done     chan struct{} // closed when err is set (nil for a call sent by its own caller)
	lead     chan struct{} // closed when this call must flush the waiting ones
	state    callState     // of a queued call, under its lane's mu
	stored   []string      // of a failed call, the queues whose jobs are stored, set by the sender
}

// fail records err as c's failure, unless it has one already (the first
// is the one its caller is told; an uncertain one is merged apart).
func (c *enqCall) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// callState is where a queued Enqueue call is.
type callState uint8

const (
	callWaiting  callState = iota // in its lane's waiting
	callSent                      // taken by a sender, no answer yet
	callAnswered                  // its answer is in (set by the sender)
	callGone                      // its caller stopped waiting
)

// flushEnqueues sends the coalesced calls of batch and completes them. The
// round trip lasts until the last of their callers stops waiting; each
// caller stops at its own deadline (or when its context ends).
func (b *Broker) flushEnqueues(ctx context.Context, l *enqLane, batch []*enqCall) {
	last := batch[0].deadline
	for _, c := range batch[1:] {
		if c.deadline.After(last) {
			last = c.deadline
		}
	}
	ctx, cancel := context.WithDeadline(ctx, last)
	made := b.sendEnqueues(ctx, batch, time.Now())
	l.handOver()
	b.listMade(ctx, made)
	cancel()
	for _, c := range batch {
		close(c.done)
	}
}

func jobIDs(jobs []queue.NewJob) []string {
	ids := make([]string, len(jobs))
	for i, nj := range jobs {
		ids[i] = nj.ID
	}
	return ids
}

// enqPart is the jobs of one call in one queue: one script call.
type enqPart struct {
	call *enqCall
	q    string
	jobs []queue.NewJob
	cmd  *redis.Cmd
	ok   bool // its jobs stored (call.stored is built from it on failure alone)
}

// sendEnqueues stores the jobs of calls in one round trip, sent at now, and
// sets each call's err. One call in one known queue on a single server is
// one EVALSHA (see runAll); anything else is a pipeline of one script per
// call and queue. On a cluster the wake-ups and the listing of queues new
// to this broker follow apart (signal), and it returns the queues the jobs
// made, for the sender to list before its callers are answered (listMade).
// Queued calls whose caller gave up meanwhile are left alone.
func (b *Broker) sendEnqueues(ctx context.Context, calls []*enqCall, now time.Time) []string {
	var parts []*enqPart
	var wakeQueues []wakeN
	var newQueues, madeQueues []string
	for _, c := range calls {
		first := len(parts)
		for _, nj := range c.jobs {
			var p *enqPart
			for _, x := range parts[first:] {
				if x.q == nj.Queue {
					p = x
					break
				}
			}
			if p == nil {
				p = &enqPart{call: c, q: nj.Queue}
				parts = append(parts, p)
			}
			p.jobs = append(p.jobs, nj)
			// A job ready now wakes a fetcher of its queue, up to
			// wakeBacklog of them; a delayed one or a cron job (At, its
			// first occurrence) waits scheduled.
			if !b.single && nj.Delay <= 0 && nj.At.IsZero() {
				wakeQueues = addWake(wakeQueues, nj.Queue, 1)
			}
			if !slices.Contains(newQueues, nj.Queue) && !b.isKnown(nj.Queue) {
				newQueues = append(newQueues, nj.Queue)
			}
		}
	}
	sc := make([]scriptCall, len(parts))
	var na int64
	for i, p := range parts {
		if i == 0 || p.call != parts[i-1].call {
			na = b.notAfter(now, p.call.deadline)
		}
		sc[i] = b.enqueueCall(p.q, p.jobs, na)
	}
	sent := time.Now()
	cmds, err := b.runAll(ctx, sc)
	read := time.Now()
	if !b.single {
		// Once this broker knows what it lists (markKnown, below), so that
		// a listing that fails makes the queue unknown again. The queues
		// these jobs made are listed by listMade, before their callers are
		// answered: listed again here, after them, a queue another broker
		// removed meanwhile was listed again, empty.
		defer func() {
			b.signal(wakeQueues, slices.DeleteFunc(newQueues, func(q string) bool { return slices.Contains(madeQueues, q) }))
		}()
	}
	for i, p := range parts {
		p.cmd = cmds[i]
	}
	if calls[0].done != nil {
		// Queued calls: those whose caller is still waiting get the answer,
		// and their callers can no longer give up (a batch is one lane's).
		l := calls[0].lane
		l.mu.Lock()
		for _, c := range calls {
			if c.state == callSent {
				c.state = callAnswered
			}
		}
		l.mu.Unlock()
	}
	for _, p := range parts {
		if p.call.state == callGone {
			continue
		}
		if e := p.cmd.Err(); e != nil {
			if mayHaveRun(e) || ranPartly(e) {
				// Redis may have run it, its answer lost; or the script
				// failed running, its writes before the error kept.
				var u *queue.UncertainEnqueueError
				if errors.As(p.call.err, &u) {
					u.JobIDs = append(u.JobIDs, jobIDs(p.jobs)...)
					// Failed part way if any of its queues' scripts did.
					u.Failed = u.Failed || !mayHaveRun(e)
				} else {
					p.call.err = &queue.UncertainEnqueueError{JobIDs: jobIDs(p.jobs), Err: fmt.Errorf("enqueue: %w", e), Failed: !mayHaveRun(e)}
				}
			} else {
				p.call.fail(fmt.Errorf("enqueue: %w", e))
			}
			continue
		}
		r, ok := p.cmd.Val().([]any)
		if !ok || len(r) < 2 {
			p.call.fail(fmt.Errorf("enqueue: unexpected reply %v", p.cmd.Val()))
			continue
		}
		b.learn(r[0], sent, read)
		// A part stored is finished below even when another part of its
		// call failed: the call's error names it as stored
		// (PartialEnqueueError), and its jobs are as stored.
		var replayed []bool
		if len(r) > 3 {
			var err error
			if replayed, err = enqueueRefusal(r, p.jobs); err != nil {
				p.call.fail(err)
				continue
			}
		}
		if dup, _ := r[1].(string); dup != "" {
			p.call.fail(core.Errorf(core.CodeConflict, "job %s already exists", dup))
			continue
		}
		p.ok = true
		if made, _ := r[2].(int64); made == 1 && !slices.Contains(madeQueues, p.q) {
			madeQueues = append(madeQueues, p.q)
		}
		now := msTime(r[0])
		for i, nj := range p.jobs {
			if replayed != nil && replayed[i] {
				continue
			}
			nj.EnqueuedAt = now
			switch {
			case !nj.At.IsZero(): // as the script: scheduled at its first occurrence
				nj.Status, nj.RunAt = queue.StatusScheduled, time.UnixMilli(max(nj.At.UnixMilli(), 1)).UTC()
			case nj.Delay > 0:
				nj.Status, nj.RunAt = queue.StatusScheduled, now.Add(nj.Delay.Truncate(time.Millisecond))
			default:
				nj.Status, nj.RunAt, nj.ReadyAt = queue.StatusPending, now, now
			}
		}
	}
	// The queues stored of a failed call, built on failure alone: a call
	// that succeeded allocates nothing for them.
	for _, p := range parts {
		if p.ok && p.call.state != callGone && p.call.err != nil {
			p.call.stored = append(p.call.stored, p.q)
		}
	}
	for _, c := range calls {
		if c.state != callGone && c.err != nil && len(c.stored) > 0 {
			c.err = &queue.PartialEnqueueError{Stored: c.stored, Err: c.err}
		}
	}
	if err == nil {
		for _, q := range slices.Concat(newQueues, madeQueues) {
			b.markKnown(q)
		}
	}
	if b.single {
		return nil
	}
	return madeQueues // listMade's, once the lane is handed over
}

// signals are a cluster's wake-ups and listings of new queues still to
// send, coalesced: a queue listed twice is sent once, and a queue's
// wake-ups (one per ready job) are at most wakeBacklog.
type signals struct {
	mu      sync.Mutex
	wake    []wakeN
	list    []string
	running bool
	// flushes counts the round trips with wake-ups, by the one sender
	// running (the wake-up list is trimmed every 32nd).
	flushes int
}

// signal sends, on a cluster, what an enqueue that stored jobs owes the
// other slots: the wake-ups of the queues that got ready jobs, and the
// listing of the queues new to this broker that its jobs did not make (a
// repair: a queue whose maker died before listing it; see recheckLater),
// each if it still exists.
// Apart from the enqueues and after them, best effort, in round trips of
// their own by one sender at a time, which takes everything given
// meanwhile: the wake-up list and the index live on other masters, and in
// the enqueues' pipeline a master that does not answer would hold up or
// fail the answers of the others (a missed wake-up costs a worker's poll
// backoff; a queue not listed is listed again by the next enqueue there
// and by Tick).
func (b *Broker) signal(wakeQueues []wakeN, newQueues []string) {
	if len(wakeQueues) == 0 && len(newQueues) == 0 {
		return
	}
	b.sig.mu.Lock()
	defer b.sig.mu.Unlock()
	for _, w := range wakeQueues {
		b.sig.wake = addWake(b.sig.wake, w.q, w.n)
	}
	for _, q := range newQueues {
		if !slices.Contains(b.sig.list, q) {
			b.sig.list = append(b.sig.list, q)
		}
	}
	if !b.sig.running {
		b.sig.running = true
		go b.sendSignals()
	}
}

// wakeN is n wake-ups of queue q.
type wakeN struct {
	q string
	n int
}

// addWake adds n wake-ups of q to ws, at most wakeBacklog of q in all.
func addWake(ws []wakeN, q string, n int) []wakeN {
	for i := range ws {
		if ws[i].q == q {
			ws[i].n = min(ws[i].n+n, wakeBacklog)
			return ws
		}
	}
	return append(ws, wakeN{q, min(n, wakeBacklog)})
}

// sendSignals sends the signals given until there are none left.
func (b *Broker) sendSignals() {
	for {
		b.sig.mu.Lock()
		wake, list := b.sig.wake, b.sig.list
		b.sig.wake, b.sig.list = nil, nil
		if len(wake) == 0 && len(list) == 0 {
			b.sig.running = false
			b.sig.mu.Unlock()
			return
		}
		trim := false
		if len(wake) > 0 {
			b.sig.flushes++
			trim = b.sig.flushes%32 == 0
		}
		b.sig.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), b.cmdTimeout)
		if len(wake) > 0 { // trim only comes with wake-ups
			var names []string
			for _, w := range wake {
				for range w.n {
					names = append(names, w.q)
				}
			}
			pipe := b.rdb.Pipeline()
			b.queueWake(ctx, pipe, names, trim)
			_, _ = redispipe.Exec(ctx, pipe)
		}
		if len(list) > 0 {
			// Only those that still exist: this runs after the enqueues
			// were answered, and another broker may have removed such a
			// queue since (listed blindly, it was listed again, empty).
			settled, err := b.listIfExists(ctx, list)
			if err != nil {
				b.recheckLater(slices.DeleteFunc(list, func(q string) bool { return slices.Contains(settled, q) })...)
			}
		}
		cancel()
	}
}

// enqueueCall is the enqueueScript call storing jobs in queue q, not after
// notAfter (Redis ms; 0: no deadline).
func (b *Broker) enqueueCall(q string, jobs []queue.NewJob, notAfter int64) scriptCall {
	k := b.keys(q)
	ks := k.enqueue[:4]
	if b.single {
		ks = k.enqueue[:]
	}
	keyed := 0
	for _, nj := range jobs {
		if nj.Idem != nil {
			keyed++
		}
	}
	const head = 4 // now, queue, not after, keyed
	args := make([]any, head+5*keyed, head+5*keyed+11*len(jobs))
	args[0], args[1], args[2], args[3] = b.now(), q, notAfter, keyed
	e := head
	for _, nj := range jobs {
		from := len(args)
		args = append(args, nj.ID, nj.Type, []byte(nj.Payload), nj.MaxRetries, nj.IntervalSeconds, ms(nj.Delay), nj.Source)
		args = append(args, nj.TimeoutMS)
		var at int64
		if !nj.At.IsZero() {
			at = max(nj.At.UnixMilli(), 1)
		}
		args = append(args, nj.Cron, nj.Timezone, at)
		if nj.Idem != nil {
			// Lua's ARGV counts from 1.
			args[e], args[e+1], args[e+2], args[e+3], args[e+4] = from+1, len(args)-from, nj.Idem.Key, nj.Idem.Fingerprint, max(ms(nj.Idem.TTL), 1)
			e += 5
		}
	}
	return scriptCall{enqueueScript, ks, args}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func (b *Broker) isKnown(q string) bool {
	_, ok := b.keyCache.Load(q)
	return ok
}

func (b *Broker) markKnown(q string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	if b.added == nil {
		b.added = map[string]uint64{}
	}
	b.added[q] = b.gen
	b.addName(q)
}

// addName adds q to the cached names and caches its keys. The list is
// copied on write: callers iterate the slice they were handed without the
// lock, so it is never changed in place.
func (b *Broker) addName(q string) {
	if !b.isKnown(q) {
		b.keyCache.Store(q, b.newKeys(q))
		names := make([]string, len(b.names), len(b.names)+1)
		copy(names, b.names)
		names = append(names, q)
		sort.Strings(names)
		b.names = names
	}
}

// Queues returns every queue in the index.
func (b *Broker) Queues(ctx context.Context) ([]string, error) {
	return b.queueNames(ctx, 0)
}

// queueNames returns the queue names, read from the index unless the cached
// list is younger than fresh.
func (b *Broker) queueNames(ctx context.Context, fresh time.Duration) ([]string, error) {
	b.mu.Lock()
	if fresh > 0 && time.Since(b.synced) < fresh {
		names := b.names
		b.mu.Unlock()
		return names, nil
	}
	b.gen++
	start := b.gen
	b.mu.Unlock()
	// Bounded like the scripts (deadline.go): on a stalled Redis, go-redis
	// would otherwise read until the context ends, and try again.
	rctx, cancel, _ := b.bound(ctx)
	names, err := b.rdb.SMembers(rctx, b.indexKey()).Result()
	cancel()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if start < b.applied {
		return b.names, nil // a read started later has been applied: it is fresher
	}
	b.applied = start
	// The index is the truth: queues removed since (by any broker) go, and
	// the queues this broker added since the read started stay.
	keep := make(map[string]bool, len(names))
	for _, q := range names {
		keep[q] = true
	}
	for q, at := range b.added {
		if at > start {
			keep[q] = true
		} else {
			delete(b.added, q)
		}
	}
	b.setNames(keep)
	b.synced = time.Now()
	return b.names, nil
}

// setNames makes the cached names those of keep, in one new sorted list
// (adding or dropping them one by one copies and sorts the list for each:
// a first read of 10,000 queues took seconds); the caller holds mu.
func (b *Broker) setNames(keep map[string]bool) {
	for _, q := range b.names {
		if !keep[q] {
			b.keyCache.Delete(q)
		}
	}
	names := make([]string, 0, len(keep))
	for q := range keep {
		if !b.isKnown(q) {
			b.keyCache.Store(q, b.newKeys(q))
		}
		names = append(names, q)
	}
	sort.Strings(names)
	b.names = names
}

// dropName forgets q: its cached keys and its place in names (copied on
// write, as in addName).
func (b *Broker) dropName(q string) {
	if !b.isKnown(q) {
		return
	}
	b.keyCache.Delete(q)
	b.names = slices.DeleteFunc(slices.Clone(b.names), func(n string) bool { return n == q })
}

// Get returns one job, looking in every queue in one round trip: on a
// single server one script (locate); on a cluster one HMGET per queue,
// pipelined, and, when none has the job, again after reading the index.
func (b *Broker) Get(ctx context.Context, id string) (*queue.Job, error) {
	if b.single {
		return b.locate(ctx, id)
	}
	for _, fresh := range []time.Duration{5 * time.Second, 0} {
		names, err := b.queueNames(ctx, fresh)
		if err != nil {
			return nil, err
		}
		jobs, err := b.getMany(ctx, names, []string{id})
		for _, j := range jobs {
			if j != nil {
				return j, nil // found, even if another queue's read failed
			}
		}
		if err != nil {
			return nil, err // not found where it could be read: unknown
		}
	}
	return nil, core.Errorf(core.CodeNotFound, "job %s not found", id)
}

// locate finds job id with locateScript: one call, which reads the index
// itself and costs an EXISTS per queue, not an HMGET. Bounded like the
// read of the index it replaces (queueNames).
func (b *Broker) locate(ctx context.Context, id string) (*queue.Job, error) {
	rctx, cancel, _ := b.bound(ctx)
	r, err := b.run(rctx, locateScript, []string{b.indexKey()}, b.prefix, id)
	cancel()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	if v, _ := r.([]any); v != nil {
		if j := parseJob(v); j != nil {
			return j, nil
		}
	}
	return nil, core.Errorf(core.CodeNotFound, "job %s not found", id)
}

// getMany reads the jobs ids from each of the queues (every combination) in
// one pipeline; missing ones are nil. When some reads fail (on a Redis
// Cluster, those of a master that is down), the others are still returned,
// with the error: a job on a master that answers is found.
func (b *Broker) getMany(ctx context.Context, queues []string, ids []string) ([]*queue.Job, error) {
	if len(queues) == 0 || len(ids) == 0 {
		return nil, nil
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, 0, len(queues)*len(ids))
	for _, q := range queues {
		k := b.keys(q)
		for _, id := range ids {
			cmds = append(cmds, pipe.HMGet(ctx, k.job+id, fields...))
		}
	}
	_, err := redispipe.Exec(ctx, pipe)
	if err != nil {
		err = fmt.Errorf("get jobs: %w", err)
	}
	out := make([]*queue.Job, len(cmds))
	for i, c := range cmds {
		if c.Err() == nil {
			out[i] = parseJob(c.Val())
		}
	}
	return out, err
}

// Fetch starts up to req.N pending jobs. With none pending and a positive
// req.Wait it blocks on the wake-up list (BLPOP; go-redis counts blocking
// timeouts in whole seconds, so at least one) and tries again once woken,
// first in the queue the wake-up names. A job left pending for want of a
// free worker (req.Ahead) is not "none pending": it returns at once.
func (b *Broker) Fetch(ctx context.Context, req queue.FetchRequest) ([]queue.Lease, error) {
	take := func(hint string) ([]queue.Lease, string, error) {
		leases, held, err := b.take(ctx, req, hint)
		if req.Held != nil {
			*req.Held = held
		}
		return leases, held, err
	}
	leases, held, err := take(req.Prefer)
	if err != nil || len(leases) > 0 || held != "" || req.Wait <= 0 {
		return leases, err
	}
	// A wake-up whose job another fetcher took (or a leftover one) is
	// spurious: block again, at most as many times as the list can hold.
	hb := 0        // hand-backs by this call: the first handBacks pause
	cameBack := "" // the queue of a wake-up handed back that came back
	for range wakeBacklog + 32 {
		if b.isDown(ctx, b.wakeKey()) {
			// The wake-up list's master is failing (on a cluster): a
			// blocking wait there would hold the fetcher for a command
			// timeout. Look again shortly instead.
			t := time.NewTimer(min(req.Wait, wakePoll))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, nil
			case <-t.C:
			}
			leases, _, err := take(req.Prefer)
			return leases, err
		}
		// Bounded by the block plus a command timeout: go-redis sends a
		// blocking command again when its node does not answer, and a
		// stalled master held the fetcher three times that.
		block := max(maxBlock, req.Wait.Truncate(time.Second))
		bctx, cancel := context.WithTimeout(ctx, block+b.cmdTimeout)
		res, err := b.rdb.BLPop(bctx, block, b.wakeKey()).Result()
		cancel()
		switch {
		case errors.Is(err, redis.Nil):
			return nil, nil
		case err != nil:
			b.failed(ctx, b.wakeKey(), err)
			return nil, fmt.Errorf("wait for jobs: %w", err)
		}
		if len(req.Queues) > 0 && !slices.Contains(req.Queues, res[1]) {
			// Not ours (WORKER_QUEUES): the fetchers of another daemon
			// may be waiting for it.
			q := res[1]
			if q == cameBack {
				// Handed back by the pop before, nobody blocked wanted
				// it: dropped (see handBack).
				cameBack = ""
				continue
			}
			var pause time.Duration
			if hb < handBacks {
				pause = handBackPause << hb
			}
			hb++
			back, done := b.handBack(ctx, q, pause, req.Wait)
			if done {
				return nil, nil
			}
			cameBack = ""
			if back {
				cameBack = q
			}
			continue
		}
		cameBack = ""
		leases, held, err = take(cmp.Or(req.Prefer, res[1]))
		if err != nil || len(leases) > 0 || held != "" {
			return leases, err
		}
	}
	// The bound: wake-ups of foreign queues ahead of this set's may have
	// used it up (a batch over many queues); the set's own jobs are not
	// left for the next call.
	leases, _, err = take(req.Prefer)
	return leases, err
}

// handBacks is how many hand-backs of one Fetch call pause, and
// handBackPause the first pause, doubled for each next one: 2, 4, 8 ms,
// then none, so that a call pauses at most 14 ms however many foreign
// wake-ups it pops.
const (
	handBacks     = 3
	handBackPause = 2 * time.Millisecond
)

// handBack puts a wake-up that a fetch with a queue set popped for queue q
// outside its set back at the head of the list (LPUSH, best effort), so
// that a fetcher blocked on the list, of a daemon that works q, gets it at
// once: Redis serves a push to the client blocked longest before the next
// command, and this fetcher is not blocked while it pushes. Then it pauses
// (pause, at most wait; none once the call's budget is spent), so that a
// fetcher of q that is between its non-blocking take and its BLPOP pops
// the wake-up before this one blocks again, and reports whether the
// wake-up is still at the head of the list (back: nobody popped it; this
// fetcher's next BLPOP pops it again at once). The caller drops a wake-up
// that came back at that next pop: that loses no job, since no fetcher
// blocked on the list wanted it and a fetcher that was not blocked takes
// without blocking before it blocks again. A wake-up another fetcher took
// leaves nothing behind, so a fetch that hands back many jobs' wake-ups
// drops none that a blocked fetcher waits for. done is true when ctx
// ended.
func (b *Broker) handBack(ctx context.Context, q string, pause, wait time.Duration) (back, done bool) {
	rctx, cancel := context.WithTimeout(ctx, b.cmdTimeout)
	defer cancel()
	if err := b.rdb.LPush(rctx, b.wakeKey(), q).Err(); err != nil {
		if ctx.Err() == nil {
			b.failed(ctx, b.wakeKey(), err) // a lost wake-up costs its fetchers a poll
		}
		return false, ctx.Err() != nil
	}
	if pause > 0 {
		t := time.NewTimer(min(pause, wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return false, true
		case <-t.C:
		}
	}
	rctx, cancel = context.WithTimeout(ctx, b.cmdTimeout)
	defer cancel()
	head, err := b.rdb.LIndex(rctx, b.wakeKey(), 0).Result()
	return err == nil && head == q, false
}

// take starts up to req.N jobs, trying the hinted queue first, then the
// others round-robin (in the order given, with req.Ordered; with
// req.Strict too, the hint is req.Prefer alone, not a wake-up's queue).
// The req.N-req.Ahead jobs that start at once are counted across the
// queues as they are tried one after another: each dequeue script may
// take any job up to what is left of them, and beyond
// it none on its last try (held names the first queue where one was left
// pending; with req.Strict, the fetch ends there). Beyond scanDirect other queues, one pipelined LLEN of
// their pending lists picks those with jobs ready, so a fetch costs a few
// round trips however many queues sit idle, not one per queue.
//
// Each dequeue script is bounded like a tick: the caller waits for it until
// its ctx ends or one command timeout passes, and the script carries a
// "not after" deadline (deadline.go), so that a stalled Redis that runs it
// after the fetcher gave up starts nothing (its jobs would stay leased to
// nobody until their leases expire, an attempt lost and their start never
// counted). The fetcher gets an error and fetches again.
//
// On a cluster, the queues of a master marked failing are left out
// (downmasters.go), and a queue whose dequeue fails marks its master so
// and the fetch goes on with the other queues: one stalled master does
// not hold up the others'. The error is returned with the jobs taken.
func (b *Broker) take(ctx context.Context, req queue.FetchRequest, hint string) (_ []queue.Lease, held string, err error) {
	names := req.Queues
	var failure error // of a master now marked failing; the fetch went on
	if len(names) == 0 {
		fresh := 2 * time.Second
		if b.isDown(ctx, b.indexKey()) {
			fresh = staleIndex // the index's master is failing: the names known
		}
		if names, err = b.queueNames(ctx, fresh); err != nil {
			known := b.knownNames()
			if len(known) == 0 || !b.failed(ctx, b.indexKey(), err) {
				return nil, "", err
			}
			names, failure = known, err
		}
	}
	if live, away := b.liveQueues(ctx, names); away != nil {
		if len(req.Queues) > 0 && !req.Only {
			// The caller named these queues: a job of theirs left out is
			// not "none pending" (review code30 C4: run-next of a queue
			// whose master was failing answered 404).
			failure = cmp.Or(failure, errMasterFailing)
		}
		names = live
	}
	var leases []queue.Lease
	ready := req.N - max(req.Ahead, 0)
	dequeue := func(q string) error {
		k := b.keys(q)
		rctx, cancel, na := b.bound(ctx)
		sent := time.Now()
		r, err := b.run(rctx, dequeueScript, []string{k.pending, k.running, k.stats, k.job, k.paused},
			b.now(), req.N-len(leases), ms(req.Lease), na, max(ready-len(leases), 0))
		cancel()
		if err != nil {
			return fmt.Errorf("fetch from %s: %w", q, err)
		}
		a := r.([]any)
		b.learn(a[0], sent, time.Now())
		if len(a) == 2 && a[1] == "late" { // {now, "late"}
			return fmt.Errorf("fetch from %s: %w", q, errLate)
		}
		now := msTime(a[0])
		for _, f := range a[1:] {
			if f == "held" { // last, after the jobs started
				held = cmp.Or(held, q)
				break
			}
			j, tok := parseStarted(f.([]any), q, now, req.Lease)
			leases = append(leases, queue.Lease{Job: j, Token: tok})
		}
		return nil
	}
	// try is dequeue, where a failure of q alone (an answer about its keys,
	// or on a cluster its master's, now marked failing) lets the fetch go
	// on with the other queues; a single server's failing ends it.
	try := func(q string) error {
		err := dequeue(q)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if b.failed(ctx, b.keys(q).pending, err) || !masterFailing(err) {
			failure = cmp.Or(failure, err)
			return nil
		}
		return err
	}
	if req.Ordered && req.Strict {
		hint = req.Prefer // the listed order wins over a wake-up's queue
	}
	// A job held in the hinted queue with req.Strict ends the fetch at the
	// loop below, before any other queue (TestStrictHintHeld).
	if hint != "" && (len(req.Queues) == 0 || slices.Contains(req.Queues, hint)) {
		b.markKnown(hint)
		if b.isDown(ctx, b.keys(hint).pending) {
			hint = ""
		} else if err := try(hint); err != nil || len(leases) >= req.N {
			return leases, held, cmp.Or(err, failure)
		}
	}
	b.mu.Lock()
	b.rr++
	rr := b.rr
	b.mu.Unlock()
	if req.Ordered {
		rr = 0 // the order given; ready keeps it
	}
	others := make([]string, 0, len(names))
	for i := range names {
		if q := names[(rr+i)%len(names)]; q != hint {
			others = append(others, q)
		}
	}
	var unread error
	if len(others) > scanDirect {
		others, unread = b.ready(ctx, others)
	}
	for _, q := range others {
		if len(leases) >= req.N || held != "" && req.Strict {
			break // strict: nothing of a later queue before the held job
		}
		if err := try(q); err != nil {
			return leases, held, err
		}
	}
	if len(leases) == 0 && held == "" && unread != nil {
		return nil, "", unread
	}
	return leases, held, failure
}

// errMasterFailing is the error of a fetch that left out a queue it was
// asked for, or of outcomes not sent, their Cluster master marked failing
// (downmasters.go).
var errMasterFailing = errors.New("the master of a queue is failing (a Redis Cluster master that does not answer): its calls wait until it answers again")

// wakePoll is how often a fetcher looks for jobs while the wake-up list's
// master is failing, instead of blocking on the list.
const wakePoll = 200 * time.Millisecond

// staleIndex is how old a fetch takes the queue names this broker knows
// while the index's master is failing: any age.
const staleIndex = 100 * 365 * 24 * time.Hour

// knownNames is the queue names this broker knows (from the index and its
// own enqueues).
func (b *Broker) knownNames() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.names
}

// scanDirect is how many queues a fetch tries one by one without first
// asking which have jobs ready: up to it, the direct tries cost no more
// round trips than the question and its answers.
const scanDirect = 2

// ready returns those of names (in their order, in names' own backing
// array) whose pending list holds a job, with one pipelined round trip
// (one per master on a Redis Cluster, sent together, each with its own
// errors). A queue whose count could not be read (its master unreachable)
// is left out, its master marked failing, and the first such error
// returned with the others, so one master down does not stop fetches from
// the rest.
func (b *Broker) ready(ctx context.Context, names []string) ([]string, error) {
	lens := make([]*redis.IntCmd, len(names))
	count := func(idx []int) {
		// Bounded like a command: go-redis retries a pipeline whose node
		// does not answer, and a stalled master held a fetch for 16 s (its
		// read timeout four times, and the dials between).
		rctx, cancel := context.WithTimeout(ctx, b.cmdTimeout)
		defer cancel()
		pipe := b.rdb.Pipeline()
		if idx == nil { // every queue: one server
			for i, q := range names {
				lens[i] = pipe.LLen(rctx, b.keys(q).pending)
			}
		}
		for _, i := range idx {
			lens[i] = pipe.LLen(rctx, b.keys(names[i]).pending)
		}
		_, _ = redispipe.Exec(rctx, pipe) // each command keeps its own error
	}
	if b.single {
		count(nil)
	} else {
		// A pipeline per master: in one across masters, a master that
		// does not answer left every command without an answer or an
		// error, and redispipe.Exec gave them all the pipeline's error.
		var wg sync.WaitGroup
		for _, idx := range b.byMaster(ctx, names) {
			wg.Go(func() { count(idx) })
		}
		wg.Wait()
	}
	var first error
	out := names[:0]
	for i, q := range names {
		n, err := lens[i].Result()
		if err != nil {
			if first == nil {
				first = fmt.Errorf("fetch: pending count of %s: %w", q, err)
			}
			b.failed(ctx, b.keys(q).pending, err)
			continue
		}
		if n > 0 {
			out = append(out, q)
		}
	}
	return out, first
}

// reply decodes the {"ok", …} / {"conflict", status} / {"not_found"} replies.
func reply(r any, id, what string) ([]any, error) {
	a := r.([]any)
	switch a[0].(string) {
	case "ok":
		return a[1:], nil
	case "not_found":
		return nil, core.Errorf(core.CodeNotFound, "job %s not found", id)
	default:
		return nil, core.Errorf(core.CodeConflict, "job %s is %s: cannot %s it", id, a[1], what)
	}
}

// queueOf finds the queue of job id.
func (b *Broker) queueOf(ctx context.Context, id string) (string, error) {
	j, err := b.Get(ctx, id)
	if err != nil {
		return "", err
	}
	return j.Queue, nil
}

// Claim starts one job now.
func (b *Broker) Claim(ctx context.Context, id string, lease time.Duration) (queue.Lease, error) {
	q, err := b.queueOf(ctx, id)
	if err != nil {
		return queue.Lease{}, err
	}
	// Bounded like a fetch (see take): a claim run late starts nothing.
	k := b.keys(q)
	rctx, cancel, na := b.bound(ctx)
	sent := time.Now()
	r, err := b.run(rctx, claimScript, []string{k.pending, k.scheduled, k.retry, k.running, k.stats, k.job},
		b.now(), id, ms(lease), na)
	cancel()
	if err != nil {
		return queue.Lease{}, fmt.Errorf("claim %s: %w", id, err)
	}
	if a, _ := r.([]any); len(a) == 2 && a[0] == "late" { // {"late", now}
		b.learn(a[1], sent, time.Now())
		return queue.Lease{}, fmt.Errorf("claim %s: %w", id, errLate)
	}
	a, err := reply(r, id, "run")
	if err != nil {
		return queue.Lease{}, err
	}
	b.learn(a[0], sent, time.Now())
	j, tok := parseStarted(a[1].([]any), q, msTime(a[0]), lease)
	return queue.Lease{Job: j, Token: tok}, nil
}

// byQueue groups indexes by a key (a queue, a master's address), in
// first-seen order.
func byQueue(n int, queueOf func(int) string) ([]string, map[string][]int) {
	groups := map[string][]int{}
	var order []string
	for i := 0; i < n; i++ {
		q := queueOf(i)
		if _, ok := groups[q]; !ok {
			order = append(order, q)
		}
		groups[q] = append(groups[q], i)
	}
	return order, groups
}

// Extend renews leases: one script per queue, pipelined.
func (b *Broker) Extend(ctx context.Context, refs []queue.Ref, lease time.Duration) ([]bool, error) {
	return b.perRef(ctx, refs, "extend", func(k *keys) ([]string, []any, *script) {
		return []string{k.running, k.job}, []any{b.now(), ms(lease)}, extendScript
	})
}

// Release hands running jobs back.
func (b *Broker) Release(ctx context.Context, refs []queue.Ref) ([]bool, error) {
	ok, err := b.perRef(ctx, refs, "release", func(k *keys) ([]string, []any, *script) {
		return []string{k.pending, k.running, k.job}, []any{b.now()}, releaseScript
	})
	if err == nil {
		b.wake(ctx, refs)
	}
	return ok, err
}

// wake pushes one wake-up per queue of refs (best effort: a lost wake-up
// only delays a pickup until the next fetch).
func (b *Broker) wake(ctx context.Context, refs []queue.Ref) {
	var queues []string
	for _, r := range refs {
		if !slices.Contains(queues, r.Queue) {
			queues = append(queues, r.Queue)
		}
	}
	pipe := b.rdb.Pipeline()
	b.queueWake(ctx, pipe, queues, true)
	_, _ = redispipe.Exec(ctx, pipe)
}

// queueWake adds to pipe the wake-ups of queues (one RPUSH) and, with
// trim, the trim of the wake-up list to its backlog.
func (b *Broker) queueWake(ctx context.Context, pipe redis.Pipeliner, queues []string, trim bool) {
	if len(queues) > 0 {
		pipe.RPush(ctx, b.wakeKey(), toAny(queues)...)
	}
	if trim {
		pipe.LTrim(ctx, b.wakeKey(), -wakeBacklog, -1)
	}
}

// perRef runs a per-(id, token) script once per queue of refs, in one pipeline.
func (b *Broker) perRef(ctx context.Context, refs []queue.Ref, op string, call func(*keys) ([]string, []any, *script)) ([]bool, error) {
	order, groups := byQueue(len(refs), func(i int) string { return refs[i].Queue })
	cmds, err := b.pipelined(ctx, order, func(q string) ([]string, []any, *script) {
		ks, args, s := call(b.keys(q))
		for _, i := range groups[q] {
			args = append(args, refs[i].ID, refs[i].Token)
		}
		return ks, args, s
	})
	if err != nil {
		return nil, fmt.Errorf("%s leases: %w", op, err)
	}
	ok := make([]bool, len(refs))
	for qi, q := range order {
		for j, v := range cmds[qi].Val().([]any) {
			ok[groups[q][j]] = v.(int64) == 1
		}
	}
	return ok, nil
}

// pipelined runs one script per queue in a single round trip.
func (b *Broker) pipelined(ctx context.Context, order []string, call func(q string) ([]string, []any, *script)) ([]*redis.Cmd, error) {
	calls := make([]scriptCall, len(order))
	for i, q := range order {
		ks, args, s := call(q)
		calls[i] = scriptCall{s, ks, args}
	}
	return b.runAll(ctx, calls)
}

// scriptCall is one script call of a pipeline.
type scriptCall struct {
	s    *script
	keys []string
	args []any
}

// runAll runs calls with EVALSHA in one pipeline and returns their
// replies. The calls that
// fail with NOSCRIPT are sent again with EVAL, and only they: on a cluster,
// one master may have lost its scripts (a restart, a failover) while the
// others ran their calls, which must not run twice (an enqueue would find
// its jobs already there, a finish its lease gone).
//
// On a cluster, the calls a moving slot refused (redispipe.SlotMoving: nothing ran) are
// sent again, after a pause growing from 20 to 200 ms, until they are
// answered or ctx ends: go-redis tries three times within some 60 ms, while
// a slot moves for as long as its keys take to migrate, and every script
// of a queue names keys that do not exist (a queue's empty sets, the job
// key prefix), which a moving slot refuses in the meantime.
func (b *Broker) runAll(ctx context.Context, calls []scriptCall) ([]*redis.Cmd, error) {
	cmds, err := b.runOnce(ctx, calls)
	if b.single || err == nil {
		return cmds, err
	}
	for pause := 20 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		var again []int
		for i, c := range cmds {
			if redispipe.SlotMoving(c.Err()) {
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			break
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return cmds, err
		case <-t.C:
		}
		sub := make([]scriptCall, len(again))
		for j, i := range again {
			sub[j] = calls[i]
		}
		res, _ := b.runOnce(ctx, sub)
		for j, i := range again {
			cmds[i] = res[j]
		}
	}
	for _, c := range cmds {
		if e := c.Err(); e != nil {
			return cmds, e
		}
	}
	return cmds, nil
}

// runOnce is one try of runAll's calls.
//
// On a cluster, the calls of each master go in a pipeline of their own,
// sent together: go-redis ends a pipeline across masters that one of them
// does not answer with the context's error on every command, those the
// others ran too, so their answers were lost and their masters taken for
// failing (fail30b: a stalled master's first tick or finish marked them
// all).
func (b *Broker) runOnce(ctx context.Context, calls []scriptCall) ([]*redis.Cmd, error) {
	if !b.single && len(calls) > 1 {
		_, groups := byQueue(len(calls), func(i int) string { return b.masterOfKey(ctx, calls[i].keys[0]) })
		if len(groups) > 1 {
			cmds := make([]*redis.Cmd, len(calls))
			var mu sync.Mutex
			var first error
			var wg sync.WaitGroup
			for _, idx := range groups {
				wg.Go(func() {
					sub := make([]scriptCall, len(idx))
					for j, i := range idx {
						sub[j] = calls[i]
					}
					res, err := b.runPipeline(ctx, sub)
					mu.Lock()
					defer mu.Unlock()
					for j, i := range idx {
						cmds[i] = res[j]
					}
					if first == nil {
						first = err
					}
				})
			}
			wg.Wait()
			return cmds, first
		}
	}
	return b.runPipeline(ctx, calls)
}

// runPipeline is runOnce for calls of one server.
func (b *Broker) runPipeline(ctx context.Context, calls []scriptCall) ([]*redis.Cmd, error) {
	if len(calls) == 1 {
		// One plain command, no pipeline: Script.Run is EVALSHA, then EVAL
		// after NOSCRIPT (when nothing ran).
		c := calls[0]
		cmd := c.s.Run(ctx, b.rdb, c.keys, c.args...)
		return []*redis.Cmd{cmd}, cmd.Err()
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(calls))
	for i, c := range calls {
		cmds[i] = pipe.EvalSha(ctx, c.s.Hash(), c.keys, c.args...)
	}
	all, err := redispipe.Exec(ctx, pipe)
	if err == nil {
		return cmds, nil
	}
	var lost []int
	for i, c := range cmds {
		if redispipe.IsNoScript(c.Err()) {
			lost = append(lost, i)
		}
	}
	if len(lost) > 0 {
		pipe = b.rdb.Pipeline()
		for _, i := range lost {
			cmds[i] = pipe.Eval(ctx, calls[i].s.String(), calls[i].keys, calls[i].args...)
		}
		if _, err := redispipe.Exec(ctx, pipe); err != nil {
			return cmds, err
		}
	}
	for _, c := range all {
		if err := c.Err(); err != nil && !redispipe.IsNoScript(err) {
			return cmds, err
		}
	}
	return cmds, nil
}

// Finish records outcomes: one script per queue, pipelined.
//
// It is bounded like a tick: the caller waits until its ctx ends or one
// command timeout passes, and each script carries a "not after" deadline
// (deadline.go). A script that a stalled Redis runs after that writes
// nothing, and its outcomes are reported unwritten (a *queue.FinishError),
// like those of a script that got no answer: the caller sends them again,
// and that write, whose answer it reads, is the one it counts. Without the
// deadline the late script would write them and the retry find the leases
// gone, so that no transition would ever be counted.
func (b *Broker) Finish(ctx context.Context, outcomes []queue.Outcome) ([]queue.Status, error) {
	order, groups := byQueue(len(outcomes), func(i int) string { return outcomes[i].Queue })
	// On a Cluster, the outcomes of a master marked failing are not sent
	// (downmasters.go): they are answered unwritten at once, and the pool
	// writes them again later, while the others' go through. Each batch
	// that held one waited a command timeout for it, and the pool's
	// outcome writer, one at a time, fell behind its workers (fail30b N2).
	order, away := b.liveQueues(ctx, order)
	if len(order) == 0 {
		unwritten := make([]bool, len(outcomes))
		for i := range unwritten {
			unwritten[i] = true
		}
		return make([]queue.Status, len(outcomes)), &queue.FinishError{Unwritten: unwritten, Err: fmt.Errorf("finish jobs: %w", errMasterFailing)}
	}
	rctx, cancel, na := b.bound(ctx)
	sent := time.Now()
	cmds, err := b.pipelined(rctx, order, func(q string) ([]string, []any, *script) {
		k := b.keys(q)
		args := make([]any, 0, 3+5*len(groups[q]))
		args = append(args, b.now(), b.history, na)
		for _, i := range groups[q] {
			o := outcomes[i]
			if o.Err == "" {
				// A success's retry_ms slot carries a cron job's next
				// run (absolute ms; 0: none), which an earlier script
				// ignores (the job then ends as a one-shot job).
				var next int64
				if !o.NextRunAt.IsZero() {
					next = max(o.NextRunAt.UnixMilli(), 1)
				}
				args = append(args, o.ID, o.Token, "ok", string(o.Result), next)
			} else {
				kind := "fail"
				if o.NoRetry {
					kind = "final"
				}
				args = append(args, o.ID, o.Token, kind, o.Err, ms(o.RetryIn))
			}
		}
		return []string{k.running, k.retry, k.scheduled, k.history, k.dead, k.stats, k.job}, args, finishScript
	})
	cancel()
	read := time.Now()
	if err != nil && cmds == nil {
		return nil, fmt.Errorf("finish jobs: %w", err)
	}
	// Each queue's script succeeds or fails on its own (on a cluster, with
	// its master): the outcomes written are reported even when others were
	// not, so that one master down does not hold back the others' outcomes.
	to := make([]queue.Status, len(outcomes))
	var unwritten []bool
	for qi, q := range order {
		e := cmds[qi].Err()
		var a []any
		if e == nil {
			a = cmds[qi].Val().([]any)
			b.learn(a[0], sent, read)
			if len(a) == 2 && a[1] == "late" { // {now, "late"}: nothing written
				e = fmt.Errorf("queue %s: %w", q, errLate)
			}
		}
		if e != nil {
			if unwritten == nil {
				unwritten = make([]bool, len(outcomes))
				err = e
			}
			for _, i := range groups[q] {
				unwritten[i] = true
			}
			b.failed(ctx, b.keys(q).pending, e)
			continue
		}
		for j, v := range a[1:] {
			to[groups[q][j]] = queue.Status(v.(string))
		}
	}
	for _, q := range away {
		if unwritten == nil {
			unwritten = make([]bool, len(outcomes))
			err = errMasterFailing
		}
		for _, i := range groups[q] {
			unwritten[i] = true
		}
	}
	if unwritten != nil {
		return to, &queue.FinishError{Unwritten: unwritten, Err: fmt.Errorf("finish jobs: %w", err)}
	}
	if err != nil {
		return nil, fmt.Errorf("finish jobs: %w", err)
	}
	return to, nil
}

// Cancel cancels a job that has not finished.
func (b *Broker) Cancel(ctx context.Context, id string) (*queue.Job, queue.Status, error) {
	q, err := b.queueOf(ctx, id)
	if err != nil {
		return nil, "", err
	}
	k := b.keys(q)
	r, err := b.run(ctx, cancelScript, []string{k.pending, k.scheduled, k.retry, k.running, k.history, k.dead, k.job}, b.now(), id, b.history)
	if err != nil {
		return nil, "", fmt.Errorf("cancel %s: %w", id, err)
	}
	a, err := reply(r, id, "cancel")
	if err != nil {
		return nil, "", err
	}
	return parseJob(a[1].([]any)), queue.Status(a[0].(string)), nil
}

// Requeue puts a dead or cancelled job back in line.
func (b *Broker) Requeue(ctx context.Context, id string) (*queue.Job, queue.Status, error) {
	q, err := b.queueOf(ctx, id)
	if err != nil {
		return nil, "", err
	}
	k := b.keys(q)
	r, err := b.run(ctx, requeueScript, []string{k.pending, k.history, k.dead, k.job}, b.now(), id)
	if err != nil {
		return nil, "", fmt.Errorf("requeue %s: %w", id, err)
	}
	a, err := reply(r, id, "requeue")
	if err != nil {
		return nil, "", err
	}
	j := parseJob(a[1].([]any))
	b.wake(ctx, []queue.Ref{{Queue: q}})
	return j, queue.Status(a[0].(string)), nil
}

// requeueDeadBatch is the most dead-set entries one requeueDeadScript call
// looks at: a few milliseconds of Redis time.
const requeueDeadBatch = 500

// RequeueDead puts a queue's dead jobs that died at or before the cut back
// in line, oldest death first, up to limit: requeueDeadScript calls of at
// most requeueDeadBatch entries each, the first one's cut kept for the
// others, until limit jobs moved or none at or before the cut is left. It
// wakes the queue's fetchers after each call that moved jobs. When a call
// fails, the result holds what the calls before it moved, with the error.
func (b *Broker) RequeueDead(ctx context.Context, q string, before time.Time, limit int) (queue.RequeueDeadResult, error) {
	k := b.keys(q)
	ks := []string{k.pending, k.history, k.dead, k.stats, k.job}
	cut := ""
	if !before.IsZero() {
		cut = strconv.FormatInt(before.UnixMilli(), 10)
	}
	var res queue.RequeueDeadResult
	for first := true; ; first = false {
		n := min(limit-len(res.IDs), requeueDeadBatch)
		if n <= 0 {
			return res, nil
		}
		r, err := b.run(ctx, requeueDeadScript, ks, b.now(), cut, n)
		if err != nil {
			return res, fmt.Errorf("requeue dead jobs of %s: %w", q, err)
		}
		a := r.([]any)
		cutMS := a[0].(int64)
		cut = strconv.FormatInt(cutMS, 10)
		res.Cut, res.Remaining = time.UnixMilli(cutMS).UTC(), int(a[1].(int64))
		for _, id := range a[3:] {
			res.IDs = append(res.IDs, id.(string))
		}
		if len(a) > 3 {
			b.wake(ctx, []queue.Ref{{Queue: q}})
		}
		if first && a[2].(int64) == 0 {
			in, err := b.rdb.SIsMember(ctx, b.indexKey(), q).Result()
			if err != nil {
				return res, fmt.Errorf("requeue dead jobs of %s: %w", q, err)
			}
			if !in {
				return res, queue.QueueNotFoundError(q)
			}
		}
		if res.Remaining == 0 {
			return res, nil
		}
	}
}

// RemoveQueue deletes a queue that holds no job to run, with its finished
// jobs and totals. On a single server that is one script, which takes the
// queue out of the index too. On a cluster the index lives in another
// slot, so the removal is three steps, ordered against enqueueScript (whose
// jobs, when they make a queue, join the index only after they are stored):
// the script deletes the queue if it is idle; then the queue leaves the
// index; then, if jobs made the queue again meanwhile (its totals exist
// again), it goes back in. A job stored before the script makes it refuse;
// one stored after it finds the queue gone, and its enqueue (after storing
// it) or this last step (after the index change) lists the queue again.
func (b *Broker) RemoveQueue(ctx context.Context, name string) (int, error) {
	k := b.keys(name)
	ks := k.every()
	listed := "0"
	if b.single {
		ks = append(ks, b.indexKey())
	} else {
		in, err := b.rdb.SIsMember(ctx, b.indexKey(), name).Result()
		if err != nil {
			return 0, fmt.Errorf("remove queue %s: %w", name, err)
		}
		if in {
			listed = "1"
		}
	}
	r, err := b.run(ctx, removeScript, ks, name, listed)
	if err != nil {
		return 0, fmt.Errorf("remove queue %s: %w", name, err)
	}
	a, _ := r.([]any)
	status := ""
	if len(a) > 0 {
		status, _ = a[0].(string)
	}
	num := func(i int) int64 { n, _ := a[i].(int64); return n }
	switch {
	case status == "not_found":
		return 0, queue.QueueNotFoundError(name)
	case status == "busy" && len(a) == 5:
		if !b.single {
			// A busy queue must be listed: this repairs the index after a
			// removal whose last step failed.
			_ = b.rdb.SAdd(ctx, b.indexKey(), name).Err()
		}
		return 0, queue.QueueBusyError(name, num(1), num(2), num(3), num(4))
	case status != "ok" || len(a) != 2:
		return 0, fmt.Errorf("remove queue %s: unexpected reply %v", name, r)
	}
	if !b.single {
		// The queue is gone: these steps run to their end whatever the
		// caller's context, and a failure leaves the check to Tick.
		ictx, cancel := indexContext(ctx)
		defer cancel()
		err := b.rdb.SRem(ictx, b.indexKey(), name).Err()
		if err == nil {
			_, err = b.listIfExists(ictx, []string{name})
		}
		if err != nil {
			// Removed all the same; the next Tick lists the queue if jobs
			// made it again meanwhile.
			b.recheckLater(name)
		}
	}
	b.mu.Lock()
	b.dropName(name)
	delete(b.added, name)
	b.mu.Unlock()
	return int(num(1)), nil
}

// SetPaused pauses or resumes a queue with one script on its keys (the
// flag is read by dequeueScript, atomically with each take). A resume that
// changed something wakes the queue's fetchers, as a requeue does, but
// one wake-up per pending job up to wakeBacklog: a blocked fetcher (of
// any daemon) takes one wake-up, and a backlog held by the pause is work
// for all of them. A fetcher woken for nothing blocks again.
func (b *Broker) SetPaused(ctx context.Context, name string, paused bool) (bool, error) {
	k := b.keys(name)
	flag := "0"
	if paused {
		flag = "1"
	}
	r, err := b.run(ctx, pauseScript, []string{k.pending, k.scheduled, k.retry, k.running, k.history, k.dead, k.stats, k.paused}, flag)
	if err != nil {
		return false, fmt.Errorf("set paused %s: %w", name, err)
	}
	a, _ := r.([]any)
	switch {
	case len(a) == 1 && a[0] == "not_found":
		return false, queue.QueueNotFoundError(name)
	case len(a) != 3 || a[0] != "ok":
		return false, fmt.Errorf("set paused %s: unexpected reply %v", name, r)
	}
	changed := a[1] == int64(1)
	if pending, _ := a[2].(int64); changed && !paused && pending > 0 {
		pipe := b.rdb.Pipeline()
		wakes := make([]string, min(pending, wakeBacklog))
		for i := range wakes {
			wakes[i] = name
		}
		b.queueWake(ctx, pipe, wakes, true)
		_, _ = redispipe.Exec(ctx, pipe)
	}
	return changed, nil
}

// tickBatch bounds the jobs one tick script moves per kind, so that a huge
// backlog of due jobs never blocks Redis for long; Tick loops until done.
const tickBatch = 1000

// Tick promotes due jobs and recovers expired leases in every queue: one
// script per queue, all in one pipeline (one round trip per node), then
// again for the queues that moved a whole batch, until none does. Then it
// runs the index repairs that are due (relist.go), whatever the tick's
// outcome.
func (b *Broker) Tick(ctx context.Context) (queue.TickResult, error) {
	r, err := b.tick(ctx)
	if rerr := b.relist(ctx); err == nil {
		err = rerr
	}
	return r, err
}

func (b *Broker) tick(ctx context.Context) (queue.TickResult, error) {
	names, err := b.queueNames(ctx, 2*time.Second)
	if err != nil {
		return queue.TickResult{}, err
	}
	// On a cluster, a master marked failing is left out (the pipeline
	// waited a command timeout for it every tick, holding up the other
	// masters' scheduled jobs and retries), and one whose tick fails is
	// marked.
	names, _ = b.liveQueues(ctx, names)
	var total queue.TickResult
	for len(names) > 0 {
		// Bounded like an enqueue, and for the same reason: a tick script
		// that Redis runs after this call gave up would move jobs whose
		// transitions nobody counts. With its deadline it moves nothing
		// then, and the next tick does the work and counts it.
		rctx, cancel, na := b.bound(ctx)
		sent := time.Now()
		cmds, err := b.pipelined(rctx, names, func(q string) ([]string, []any, *script) {
			k := b.keys(q)
			return k.every(), []any{b.now(), b.history, tickBatch, na}, tickScript
		})
		cancel()
		read := time.Now()
		var again []string
		var woken []queue.Ref
		var first error
		for i, q := range names {
			if e := cmds[i].Err(); e != nil {
				if first == nil {
					first = fmt.Errorf("tick %s: %w", q, e)
				}
				b.failed(ctx, b.keys(q).pending, e)
				continue
			}
			a := cmds[i].Val().([]any)
			b.learn(a[4], sent, read)
			var dead []queue.DeadJob
			if len(a) > 5 {
				if a[5] == "late" { // {0, 0, 0, 0, now, "late"}
					if first == nil {
						first = fmt.Errorf("tick %s: %w", q, errLate)
					}
					continue
				}
				dead = deadJobs(q, a[5])
			}
			t := queue.TickResult{Scheduled: int(a[0].(int64)), Retried: int(a[1].(int64)), Recovered: int(a[2].(int64)), RecoveredDead: int(a[3].(int64)), Dead: dead}
			total = total.Add(t)
			if t.Scheduled+t.Retried+t.Recovered > 0 {
				woken = append(woken, queue.Ref{Queue: q})
			}
			if t.Scheduled >= tickBatch || t.Retried >= tickBatch || t.Recovered+t.RecoveredDead >= tickBatch {
				again = append(again, q)
			}
		}
		if len(woken) > 0 {
			wctx, cancel, _ := b.bound(ctx)
			b.wake(wctx, woken)
			cancel()
		}
		if first == nil && err != nil {
			first = fmt.Errorf("tick: %w", err)
		}
		if first != nil {
			return total, first
		}
		names = again
	}
	return total, nil
}

// deadJobs reads the jobs of queue q that tickScript made dead, from its
// flat list {id, type, attempts, …}.
func deadJobs(q string, list any) []queue.DeadJob {
	l, _ := list.([]any)
	var out []queue.DeadJob
	for i := 0; i+2 < len(l); i += 3 {
		id, _ := l[i].(string)
		typ, _ := l[i+1].(string)
		attempts, _ := l[i+2].(int64)
		out = append(out, queue.DeadJob{ID: id, Queue: q, Type: typ, Attempts: int(attempts), LastError: queue.LeaseExpired})
	}
	return out
}

// Stats reads one queue's gauges and totals with one script.
func (b *Broker) Stats(ctx context.Context, q string) (queue.Stats, error) {
	st, err := b.StatsMany(ctx, []string{q})
	if err != nil {
		return queue.Stats{}, err
	}
	return st[0], nil
}

// StatsMany reads the gauges and totals of queues with one script each, all
// in one pipeline (one round trip per node; one plain call for one queue).
func (b *Broker) StatsMany(ctx context.Context, queues []string) ([]queue.Stats, error) {
	if len(queues) == 0 {
		return nil, nil
	}
	stats := func(q string) ([]string, []any, *script) {
		return statsKeys(b.keys(q)), []any{b.now()}, statsScript
	}
	var groups map[string][]int
	if !b.single && len(queues) > 1 {
		groups = b.byMaster(ctx, queues)
	}
	var cmds []*redis.Cmd
	if len(groups) <= 1 {
		// One server, one queue (Stats, an admission check) or one
		// master: one round trip.
		cmds, _ = b.pipelined(ctx, queues, stats)
	} else {
		// A round trip per master, in parallel: go-redis fails every
		// command of a Cluster pipeline in which one master did not
		// answer, the answered ones too.
		cmds = make([]*redis.Cmd, len(queues))
		var wg sync.WaitGroup
		for _, idx := range groups {
			wg.Add(1)
			go func() {
				defer wg.Done()
				names := make([]string, len(idx))
				for j, i := range idx {
					names[j] = queues[i]
				}
				got, _ := b.pipelined(ctx, names, stats)
				for j, i := range idx {
					cmds[i] = got[j]
				}
			}()
		}
		wg.Wait()
	}
	// One queue whose master does not answer (or whose slot moves) leaves
	// out that queue, not every queue: the gauges of the others go on.
	out := make([]queue.Stats, 0, len(queues))
	var failed []string
	var first error
	for i, q := range queues {
		r, err := cmds[i].Result()
		a, ok := r.([]any)
		if err == nil && (!ok || len(a) < 12) {
			err = fmt.Errorf("unexpected reply %v", r)
		}
		if err != nil {
			if first == nil {
				first = fmt.Errorf("stats of %s: %w", q, err)
			}
			failed = append(failed, q)
			continue
		}
		out = append(out, parseStats(q, a))
	}
	switch {
	case first == nil:
		return out, nil
	case len(out) == 0:
		return nil, first
	}
	return out, &queue.StatsError{Failed: failed, Err: first}
}

// byMaster groups the indexes of queues by the master that holds each
// queue's keys on a cluster, as far as the client knows the slots (those
// it cannot place go together).
func (b *Broker) byMaster(ctx context.Context, queues []string) map[string][]int {
	groups := map[string][]int{}
	for i, q := range queues {
		addr := b.masterOf(ctx, q)
		groups[addr] = append(groups[addr], i)
	}
	return groups
}

// masterOf is the address of the master that holds queue q's keys on a
// cluster, as far as the client knows the slots; "" when it cannot tell,
// or on a single server.
func (b *Broker) masterOf(ctx context.Context, q string) string {
	return b.masterOfKey(ctx, b.keys(q).pending)
}

func statsKeys(k *keys) []string {
	return []string{k.pending, k.scheduled, k.retry, k.running, k.dead, k.stats, k.job, k.paused}
}

// parseStats decodes statsScript's reply for queue q.
func parseStats(q string, a []any) queue.Stats {
	n := func(i int) int64 { return a[i].(int64) }
	s := queue.Stats{Queue: q, Pending: n(1), Scheduled: n(2), Retry: n(3), Running: n(4), Dead: n(5),
		Enqueued: n(7), Started: n(8), Succeeded: n(9), Failed: n(10), Paused: n(11) == 1}
	if oldest := n(6); oldest >= 0 && s.Pending > 0 {
		s.OldestPendingAge = max(0, time.Duration(n(0)-oldest)*time.Millisecond)
	}
	s.OldestPendingSec = s.OldestPendingAge.Seconds()
	return s
}

// List returns jobs matching f.
func (b *Broker) List(ctx context.Context, f queue.Filter) ([]*queue.Job, error) {
	limit := int64(f.Limit)
	if limit <= 0 {
		limit = queue.DefaultListLimit
	}
	// The page at offset O is positions O.. of the listing cut at O+limit
	// (depth): each set is read that deep, merged as for a first page, and
	// the first O skipped.
	offset := int64(max(0, f.Offset))
	depth := offset + limit
	names := []string{f.Queue}
	if f.Queue == "" {
		var err error
		if names, err = b.queueNames(ctx, 0); err != nil {
			return nil, err
		}
	}
	st := f.Status
	if st.Finished() {
		return b.listFinished(ctx, names, st, offset, limit)
	}
	// One queue's pending, scheduled or failed jobs are listed in their
	// set's own order (the pending list's; run_at, the sorted set's score,
	// then id, as SortRecentFirst orders them): the page is just that
	// window of the set, and only its jobs are read.
	from := int64(0)
	if len(names) == 1 && st.Waiting() {
		from = offset
	}
	pipe := b.rdb.Pipeline()
	var cmds []*redis.StringSliceCmd
	for _, q := range names {
		k := b.keys(q)
		if st == "" || st == queue.StatusPending {
			cmds = append(cmds, pipe.LRange(ctx, k.pending, from, depth-1))
		}
		if st == "" || st == queue.StatusScheduled {
			cmds = append(cmds, pipe.ZRange(ctx, k.scheduled, from, depth-1))
		}
		if st == "" || st == queue.StatusFailed {
			cmds = append(cmds, pipe.ZRange(ctx, k.retry, from, depth-1))
		}
		if st == "" || st == queue.StatusRunning {
			cmds = append(cmds, pipe.ZRange(ctx, k.running, 0, -1))
		}
		// Dead jobs have a set of their own (scripts.go); a dead job that
		// a daemon of an earlier version made is in history too, and is
		// listed once below.
		if st == "" {
			cmds = append(cmds, pipe.ZRevRange(ctx, k.history, 0, depth-1), pipe.ZRevRange(ctx, k.dead, 0, depth-1))
		}
	}
	if _, err := redispipe.Exec(ctx, pipe); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	// Read the hashes in a second round trip; a job found in the sets of
	// queue q lives in q.
	pipe = b.rdb.Pipeline()
	var reads []*redis.SliceCmd
	perQueue := len(cmds) / max(1, len(names))
	var seen map[string]bool // the ids of one queue read so far
	for i, c := range cmds {
		k := b.keys(names[i/perQueue])
		if i%perQueue == 0 {
			seen = map[string]bool{}
		}
		for _, id := range c.Val() {
			if seen[id] {
				continue // in history and dead (an earlier version's dead job)
			}
			seen[id] = true
			reads = append(reads, pipe.HMGet(ctx, k.job+id, fields...))
		}
	}
	if len(reads) == 0 {
		return nil, nil
	}
	if _, err := redispipe.Exec(ctx, pipe); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	var out []*queue.Job
	for _, r := range reads {
		j := parseJob(r.Val())
		if j != nil && (st == "" || j.Status == st) {
			out = append(out, j)
		}
	}
	if st != queue.StatusPending || len(names) > 1 {
		queue.SortRecentFirst(out, st)
	}
	return queue.Page(out, int(offset-from), int(limit)), nil
}

// finishedBudget bounds the history entries one finishedScript call looks
// at (2-3 ms of Redis, measured), so that a listing never blocks Redis for
// longer (the limiter's calls time out at 100 ms): a longer walk is several
// calls, each in its own round trip.
const finishedBudget = 1000

// listFinished lists the latest finished jobs in status st of queues, limit
// of them from offset on: one finishedScript per queue, all in one
// pipeline, each walking its queue's history (its dead set for st dead)
// newest first only as far as its latest offset+limit jobs in st lie (and
// those tied with the last: the listing orders jobs finished at one time by
// id, so a cut among them by rank would pick the wrong ones, and pages
// would repeat some and never show others: review cr33 HIGH-1), so
// the cost grows with offset+limit and the entries in other statuses it
// skips, not with JOB_HISTORY. A walk that runs out of its budget goes on in
// the next round trip, from where it stopped.
func (b *Broker) listFinished(ctx context.Context, names []string, st queue.Status, offset, limit int64) ([]*queue.Job, error) {
	type walk struct {
		q         string
		need      int64
		tie, from string
		last      string // the id of the last entry looked at, at from
	}
	walks := make([]*walk, len(names))
	for i, q := range names {
		walks[i] = &walk{q: q, need: offset + limit}
	}
	var out []*queue.Job
	found := map[string]bool{} // a job finished again meanwhile moves up: seen once
	for len(walks) > 0 {
		of := make(map[string]*walk, len(walks))
		order := make([]string, len(walks))
		for i, w := range walks {
			of[w.q], order[i] = w, w.q
		}
		cmds, err := b.pipelined(ctx, order, func(q string) ([]string, []any, *script) {
			k, w := b.keys(q), of[q]
			set := k.history
			if st == queue.StatusDead {
				set = k.dead
			}
			return []string{set, k.job}, []any{string(st), w.need, w.tie, w.from, w.last, finishedBudget}, finishedScript
		})
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		next := walks[:0]
		for i, w := range walks {
			a, ok := cmds[i].Val().([]any)
			if !ok || len(a) < 4 {
				return nil, fmt.Errorf("list jobs: unexpected reply %v from queue %s", cmds[i].Val(), w.q)
			}
			for _, v := range a[4:] {
				f, _ := v.([]any)
				if j := parseJob(f); j != nil && !found[j.ID] {
					found[j.ID] = true
					out = append(out, j)
				}
			}
			if more, _ := a[0].(int64); more == 1 {
				w.need = max(0, w.need-int64(len(a)-4))
				w.from, _ = a[1].(string)
				w.last, _ = a[2].(string)
				w.tie, _ = a[3].(string)
				next = append(next, w)
			}
		}
		walks = next
	}
	queue.SortRecentFirst(out, st)
	return queue.Page(out, int(offset), int(limit)), nil
}

// Ping checks that Redis answers.
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

func msTime(v any) time.Time {
	switch n := v.(type) {
	case int64:
		return time.UnixMilli(n).UTC()
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		if err != nil || i == 0 {
			return time.Time{}
		}
		return time.UnixMilli(i).UTC()
	}
	return time.Time{}
}

// enqueueRefusal reads the tail of an enqueueScript answer longer than
// {now, 0, made}: "late", an idempotency key's refusal ("reused", "gone"),
// or the jobs replayed ("replay", then rank among the keyed jobs and
// existing id per job),
// whose Idem.Existing it sets, answering which of jobs were replayed.
func enqueueRefusal(r []any, jobs []queue.NewJob) ([]bool, error) {
	str := func(i int) string {
		if i < len(r) {
			s, _ := r[i].(string)
			return s
		}
		return ""
	}
	switch str(3) {
	case "late": // {now, 0, 0, "late"}
		return nil, fmt.Errorf("enqueue: %w", errLate)
	case "reused":
		return nil, queue.KeyReusedError(str(4), str(5))
	case "gone":
		return nil, queue.KeyGoneError(str(4), str(5))
	case "replay":
		var keyed []int // the places of the jobs with a key
		for i, nj := range jobs {
			if nj.Idem != nil {
				keyed = append(keyed, i)
			}
		}
		replayed := make([]bool, len(jobs))
		for i := 4; i+1 < len(r); i += 2 {
			rank, err := strconv.Atoi(str(i))
			if err != nil || rank < 1 || rank > len(keyed) {
				return nil, fmt.Errorf("enqueue: unexpected reply %v", r)
			}
			at := keyed[rank-1]
			jobs[at].Idem.Existing = str(i + 1)
			replayed[at] = true
		}
		return replayed, nil
	}
	return nil, fmt.Errorf("enqueue: unexpected reply %v", r)
}
