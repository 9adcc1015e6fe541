package redisbroker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// A command that times out on the client is not withdrawn from Redis: a
// stalled server (SIGSTOP, a long fork, a saturated host) keeps it in its
// socket buffer and runs it when it resumes, after the caller was told it
// failed. An enqueue would then store jobs whose caller got a 503 (and may
// have sent them again), and a tick would move jobs whose transitions
// nobody counts; a fetch or claim would lease jobs to a caller that has
// gone (they come back when the lease expires, an attempt lost), and a
// finish would write outcomes its caller then sends again, finding the
// leases gone, so that their transitions are never counted. So the scripts
// that must not act late (enqueueScript, dequeueScript, claimScript,
// finishScript, tickScript) take a "not after" argument: a time in Redis's
// own clock past which they write nothing and answer "late".
//
// The broker translates its caller's deadline into Redis's clock with an
// offset learnt from the "now" that scripts answer: a reply read at local
// time r carrying Redis time T was computed before r, so T - r is at most
// the true offset. The estimate is the lowest such bound of the last
// offsetWindow or two, so an error (a slow reply, mixed cluster masters)
// makes deadlines earlier, never later, and a clock stepped since is
// followed within seconds. The script must run within half the time the
// caller has left, which leaves the other half for the reply and for what
// the estimate cannot know. Until a first reply (or Load) gave an offset,
// and with a test clock, scripts get no deadline (0).

// offsetWindow is how long a lowest offset bound is kept.
const offsetWindow = 2 * time.Second

// defaultCommandTimeout bounds a caller's wait when the client's read
// timeout is not known or turned off (the daemon's clients read for at
// most 3 s).
const defaultCommandTimeout = 3 * time.Second

// clockOffset estimates Redis's clock minus the local wall clock, in ms.
type clockOffset struct {
	est atomic.Int64 // the estimate, valid when known is set
	has atomic.Bool

	// last is when the last sample was taken (local ms), or when the
	// broker was made.
	last atomic.Int64

	mu       sync.Mutex
	cur      int64 // lowest bound seen since curStart
	prev     int64 // lowest bound of the window before
	curStart int64 // local ms
}

// observe records that Redis said redisMS in a reply read at local time
// localMS.
func (o *clockOffset) observe(redisMS, localMS int64) {
	if redisMS <= 0 {
		return
	}
	x := redisMS - localMS
	o.mu.Lock()
	defer o.mu.Unlock()
	switch age := localMS - o.curStart; {
	case !o.has.Load() || age >= 2*offsetWindow.Milliseconds() || age < 0:
		o.cur, o.prev, o.curStart = x, x, localMS
	case age >= offsetWindow.Milliseconds():
		o.prev, o.cur, o.curStart = o.cur, x, localMS
	case x < o.cur:
		o.cur = x
	}
	o.est.Store(min(o.cur, o.prev))
	o.has.Store(true)
	o.last.Store(localMS)
}

// get returns the estimate and whether there is one.
func (o *clockOffset) get() (int64, bool) {
	if !o.has.Load() {
		return 0, false
	}
	return o.est.Load(), true
}

// commandTimeout is how long the client waits for one reply: its read
// timeout, or defaultCommandTimeout when that is not known or turned off.
func commandTimeout(rdb redis.UniversalClient) time.Duration {
	var d time.Duration
	switch c := rdb.(type) {
	case *redis.Client:
		d = c.Options().ReadTimeout
	case *redis.ClusterClient:
		d = c.Options().ReadTimeout
	}
	if d <= 0 {
		return defaultCommandTimeout
	}
	return d
}

// deadline is when a caller starting at start stops waiting: when its ctx
// ends, and at the latest one command timeout later.
func (b *Broker) deadline(ctx context.Context, start time.Time) time.Time {
	d := start.Add(b.cmdTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// bounded returns ctx ending at deadline: so that go-redis gives up then,
// and does not send the command again after a timeout (it retries timed out
// commands while the context lasts).
func bounded(ctx context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	if cd, ok := ctx.Deadline(); ok && !cd.After(deadline) {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, deadline)
}

// bound is one call to Redis from now: ctx ending at the caller's deadline
// (b.deadline), so that go-redis gives up then and does not send it again,
// and the "not after" argument for the scripts it runs (notAfter).
func (b *Broker) bound(ctx context.Context) (context.Context, context.CancelFunc, int64) {
	now := time.Now()
	deadline := b.deadline(ctx, now)
	rctx, cancel := bounded(ctx, deadline)
	return rctx, cancel, b.notAfter(now, deadline)
}

// notAfter is the "not after" argument of a script sent at now for a
// caller that waits until deadline: in Redis's clock, half the caller's
// time left from now; 0 (none) without an offset or with a test clock. A
// deadline already past gives 1, which every script finds past.
func (b *Broker) notAfter(now, deadline time.Time) int64 {
	if b.clock != nil {
		return 0
	}
	off, ok := b.offset.get()
	if !ok {
		return 0
	}
	left := deadline.Sub(now)
	if left <= 0 {
		return 1
	}
	return max(1, now.UnixMilli()+off+(left/2).Milliseconds())
}

// learn takes the offset from a reply's Redis "now" (ms), for a command
// sent at local time sent and read at read. A reply that took longer than
// a sample may (maxSampleTrip) teaches nothing while a quick one was taken
// in the last two windows (or the broker is younger than that): its bound
// is too low by up to its whole round trip, and the estimate, the lowest
// bound of the last seconds, would keep it, making every script's "not
// after" pass before it runs (as a reply read late behind a cluster master
// that did not answer did, for seconds). Without a quick one for that
// long, a slow one is taken: a low estimate makes deadlines early, never
// late, and a clock stepped meanwhile is followed.
func (b *Broker) learn(redisNow any, sent, read time.Time) {
	if b.clock != nil {
		return
	}
	n, ok := redisNow.(int64)
	if !ok {
		return
	}
	if read.Sub(sent) > b.maxSampleTrip() && read.UnixMilli()-b.offset.last.Load() < 2*offsetWindow.Milliseconds() {
		return
	}
	b.offset.observe(n, read.UnixMilli())
}

// maxSampleTrip is the longest round trip whose reply teaches the clock
// offset at once: an eighth of the command timeout (375 ms for the
// daemon's 3 s), an error that leaves a caller most of the half of its
// time that the "not after" deadline gives the script.
func (b *Broker) maxSampleTrip() time.Duration { return b.cmdTimeout / 8 }

// errLate is a script's refusal to act after its "not after" deadline.
var errLate = errors.New("the command ran in Redis after the caller's deadline (it was stalled); nothing was written")

// ranPartly reports whether err is a script's failure while it ran (an
// error reply raised by a command of the script, such as WRONGTYPE, or a
// Lua error: its text carries "@user_script"), after which the writes the
// script made before the error stay: Redis does not roll a script back.
// A refusal before the script ran is not (NOSCRIPT, BUSY, CLUSTERDOWN,
// MOVED, ASK, a connection's error), nor OOM, which Redis raises at a
// script's first write, before it wrote anything.
func ranPartly(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.Contains(msg, "@user_script") && !strings.HasPrefix(msg, "OOM ")
}

// mayHaveRun reports whether a command that failed with err may have run
// in Redis all the same: anything but an error reply from Redis. A dial
// error or a pool timeout is no proof that it did not: go-redis sends a
// command again after a timeout or a broken connection, so the attempt
// that failed to connect may follow one that ran (Redis killed right after
// running it). go-redis returns only the last attempt's error, so even a
// chain of dial errors (*net.OpError, Op "dial") says nothing of the
// attempts before it: a refused connection stays "may have run" (q27 #3).
// So does a refusal of a new connection's set-up (a changed password's
// WRONGPASS, NOAUTH, too many clients): an error reply, but to the
// connection's AUTH or HELLO, not to the command, which an attempt before
// may have run.
func mayHaveRun(err error) bool {
	var rerr redis.Error
	if err == nil {
		return false
	}
	if !errors.As(err, &rerr) {
		return true
	}
	return redis.IsAuthError(err) || redis.IsMaxClientsError(err)
}
