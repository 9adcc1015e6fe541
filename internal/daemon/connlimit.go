package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

// connLogEvery is the interval of the connection limiter's warnings.
const connLogEvery = 10 * time.Second

// freshGrace is how long a new connection has to send its first request
// before it may be closed to make room: a client sends it at once, and a
// burst of clients larger than the bound must not have the first of them
// cut before their requests are read. (net/http's Shutdown gives such
// connections 5 s for the same reason.)
const freshGrace = time.Second

// connBound is how many connections the HTTP server holds open at once in
// a process allowed nofile descriptors (RLIMIT_NOFILE), on procs CPUs
// (GOMAXPROCS); 0 means no bound (the limit is unknown, or too large to
// matter). The rest of the descriptors are kept for everything else the
// daemon opens: the Redis client's pool (10 connections per CPU, per
// node of a Cluster), the listener, the token file, the log, the
// runtime's own. The reserve is an eighth of the limit and at least 64
// plus one pool, but never more than half the limit: with the usual
// limits of 1024 and above that is an eighth (128 of 1024 on up to 6
// CPUs, 8192 of 65536), while a small limit still leaves half its
// descriptors for connections (64 of 128). A Cluster of many nodes can
// outgrow it; then accept fails for want of descriptors, and
// acceptFailed closes an idle connection for each failure.
func connBound(nofile uint64, procs int) int {
	if nofile == 0 || nofile > 1<<30 {
		return 0
	}
	n := int(nofile)
	reserve := max(n/8, 64+10*procs)
	return max(n-reserve, n/2)
}

// connLimiter is the daemon's listener: it holds at most max connections
// open at once (0: no bound), so that connections clients keep open cannot
// use up the process's file descriptors, after which accept fails
// (EMFILE) and every new client, probes and operators included, hangs in
// the listen backlog. When a connection arrives and every place is taken,
// the keep-alive connection idle longest (between two requests) is closed,
// so that the new one takes its place; when there is none, the connection
// accepted longest ago whose first request has not been read yet, once it
// has had freshGrace to send it (a client that connects and sends
// nothing, or its header slowly, holds a place for at most
// ReadHeaderTimeout otherwise). That is nginx's answer to the same
// problem. A
// connection whose request is being served is never closed for this: when
// every place holds one, Accept waits with the new connection (the
// kernel's backlog holds the ones after it) until a connection closes or
// goes idle. So at most max+1 connections are open, the one waiting for
// room included. The http.Server tells it the states of its connections
// through connState.
//
// Accept errors are logged at WARN (at most once per connLogEvery, as is
// every line here): net/http only tells its ErrorLog, which is at DEBUG.
type connLimiter struct {
	net.Listener
	max    int
	nofile uint64        // RLIMIT_NOFILE, for the log
	grace  time.Duration // freshGrace; tests change it
	epoch  time.Time     // connection states count from here, on the monotonic clock

	evictLog *core.LogThrottle // idle connections closed to make room
	waitLog  *core.LogThrottle // no place to free: new clients wait
	fdLog    *core.LogThrottle // accept failed for want of descriptors
	errLog   *core.LogThrottle // accept failed otherwise

	mu      sync.Mutex
	changed *sync.Cond                // a connection closed or went idle, or the listener closed
	open    map[*limitedConn]struct{} // connections accepted and not closed
	closed  bool                      // the listener is closed
	evicted int                       // idle connections closed to make room, since start
	// waiting says Accept waits on changed: only then does a connection
	// going idle or fresh take mu to signal it. Set under mu before Accept
	// looks for a connection to close, so that no signal is lost.
	waiting atomic.Bool
}

// limitedConn is a connection the connLimiter accepted: its Close gives
// its place back.
type limitedConn struct {
	net.Conn
	l    *connLimiter
	gone bool // its place given back (guarded by l.mu)
	// state is what the server last said of the connection, written by
	// connState without a lock (every request makes it busy, then idle):
	// 0 busy (a request in progress, or hijacked), > 0 idle (between
	// requests) since that time (connLimiter.since), < 0 fresh (accepted,
	// first request not read yet) since minus that time.
	state atomic.Int64
}

// newConnLimiter wraps ln to hold at most bound connections (0: none) in
// a process allowed nofile descriptors, logging to log.
func newConnLimiter(ln net.Listener, bound int, nofile uint64, log *slog.Logger) *connLimiter {
	l := &connLimiter{
		Listener: ln,
		max:      bound,
		grace:    freshGrace,
		epoch:    time.Now(),
		nofile:   nofile,
		evictLog: &core.LogThrottle{Logger: log, Every: connLogEvery,
			Msg: "connection limit reached: closing the connections idle longest to take new ones"},
		waitLog: &core.LogThrottle{Logger: log, Every: connLogEvery,
			Msg: "connection limit reached and no connection idle to close: new connections wait in the listen backlog"},
		fdLog: &core.LogThrottle{Logger: log, Every: connLogEvery,
			Msg: "cannot accept connections: out of file descriptors (RLIMIT_NOFILE); retrying"},
		errLog: &core.LogThrottle{Logger: log, Every: connLogEvery,
			Msg: "cannot accept a connection; retrying"},
	}
	l.changed = sync.NewCond(&l.mu)
	l.open = map[*limitedConn]struct{}{}
	return l
}

// Accept accepts the next connection and, when the bound is reached,
// closes a connection idle to make room for it, or waits (holding it)
// until one closes or goes idle. Room is made only for a connection that
// has arrived: one that goes idle while there is room stays open.
func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		l.acceptFailed(err)
		return nil, err
	}
	told := false
	var wake *time.Timer
	l.mu.Lock()
	for l.max > 0 && len(l.open) >= l.max && !l.closed {
		// Set before the scan, under mu: a connection going idle after
		// the scan sees it and wakes the Wait below. Only at the bound,
		// so that below it no connection going idle takes mu for nothing.
		l.waiting.Store(true)
		victim, wait := l.evictableLocked()
		if victim != nil {
			l.evictLocked(victim)
			continue
		}
		if wait > 0 && wake == nil {
			// The oldest new connection may be closed once its grace
			// is over: look again then.
			wake = time.AfterFunc(wait, func() {
				l.mu.Lock()
				l.changed.Broadcast()
				l.mu.Unlock()
			})
		}
		if !told && wait < 0 {
			told = true
			open := len(l.open)
			l.mu.Unlock()
			l.waitLog.Warn(context.Background(), slog.Int("max_connections", l.max), slog.Uint64("nofile", l.nofile), slog.Int("open", open))
			l.mu.Lock()
			continue
		}
		l.changed.Wait()
		if wake != nil {
			wake.Stop()
			wake = nil
		}
	}
	l.waiting.Store(false)
	if l.closed {
		l.mu.Unlock()
		_ = c.Close()
		return nil, &net.OpError{Op: "accept", Net: l.Addr().Network(), Addr: l.Addr(), Err: net.ErrClosed}
	}
	lc := &limitedConn{Conn: c, l: l}
	lc.state.Store(-l.since())
	l.open[lc] = struct{}{}
	l.mu.Unlock()
	return lc, nil
}

// Close closes the listener and ends a wait for room.
func (l *connLimiter) Close() error {
	l.mu.Lock()
	l.closed = true
	l.changed.Broadcast()
	l.mu.Unlock()
	return l.Listener.Close()
}

// evictableLocked finds the connection to close to make room: the one
// idle longest, else the one waiting longest for its first request once
// its grace is over. With none, it says when the oldest new connection's
// grace ends, or -1 when every connection is busy. l.mu held; a scan of the
// open connections, made only at the bound.
func (l *connLimiter) evictableLocked() (*limitedConn, time.Duration) {
	var idlest, oldest *limitedConn
	var idleSince, freshSince int64
	for c := range l.open {
		switch st := c.state.Load(); {
		case st > 0 && (idlest == nil || st < idleSince):
			idlest, idleSince = c, st
		case st < 0 && (oldest == nil || -st < freshSince):
			oldest, freshSince = c, -st
		}
	}
	if idlest != nil {
		return idlest, 0
	}
	if oldest == nil {
		return nil, -1
	}
	if wait := l.grace - time.Duration(l.since()-freshSince); wait > 0 {
		return nil, wait
	}
	return oldest, 0
}

// closeLocked takes victim's place back for closing it, unless it became
// busy since it was found (its request came: it is not closed then), and
// says whether it did. l.mu held; the caller closes victim.Conn.
func (l *connLimiter) closeLocked(victim *limitedConn) bool {
	st := victim.state.Load()
	if victim.gone || st == 0 || !victim.state.CompareAndSwap(st, 0) {
		return false
	}
	victim.gone = true
	delete(l.open, victim)
	l.evicted++
	return true
}

// logEvicted says (throttled) that connections are being closed to make
// room. The figures cost a scan of every connection, made only for a line
// that is written (review cr32b: not at every eviction at the bound).
func (l *connLimiter) logEvicted() {
	l.evictLog.WarnFunc(context.Background(), func() []slog.Attr {
		open, idle := l.counts()
		l.mu.Lock()
		evicted := l.evicted
		l.mu.Unlock()
		return []slog.Attr{slog.Int("max_connections", l.max), slog.Uint64("nofile", l.nofile),
			slog.Int("open", open), slog.Int("idle", idle), slog.Int("closed_total", evicted)}
	})
}

// evictLocked closes victim to make room, unless it became busy since it
// was found, and logs it (throttled); l.mu held, released meanwhile.
func (l *connLimiter) evictLocked(victim *limitedConn) {
	if !l.closeLocked(victim) {
		return
	}
	l.mu.Unlock()
	_ = victim.Conn.Close()
	l.logEvicted()
	l.mu.Lock()
}

// closeIdlest closes the connection evictableLocked finds, if any.
func (l *connLimiter) closeIdlest() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if victim, _ := l.evictableLocked(); victim != nil {
		l.evictLocked(victim)
	}
}

// acceptFailed logs an accept error (net/http retries the temporary ones)
// and, when it is for want of descriptors, closes the connection idle
// longest to free one: the bound leaves a reserve, but what else the
// process opens may have taken it.
func (l *connLimiter) acceptFailed(err error) {
	if errors.Is(err, net.ErrClosed) {
		return
	}
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		open, _ := l.counts()
		l.fdLog.Warn(context.Background(), slog.Uint64("nofile", l.nofile), slog.Int("max_connections", l.max),
			slog.Int("open", open), slog.String("err", err.Error()))
		l.closeIdlest()
		return
	}
	l.errLog.Warn(context.Background(), slog.String("err", err.Error()))
}

// connState is the http.Server's ConnState hook: it records whether each
// connection may be closed to make room, idle (between requests) or fresh
// (accepted, first request not read yet), with one atomic store and no
// lock on the request path, and wakes Accept when it waits for room.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	switch st {
	case http.StateIdle:
		lc.state.Store(l.since())
	case http.StateActive, http.StateHijacked:
		lc.state.Store(0)
		return
	default: // StateNew: Accept recorded the connection as fresh already
		return
	}
	if l.waiting.Load() {
		l.mu.Lock()
		l.changed.Broadcast()
		l.mu.Unlock()
	}
}

// since is the time since l.epoch in ns, at least 1: a connection's state
// is a time on the monotonic clock (a wall clock stepped back or forward
// would cut or stretch a new connection's grace: review ver31).
func (l *connLimiter) since() int64 { return max(int64(time.Since(l.epoch)), 1) }

// counts returns the connections open, and those of them that may be
// closed to make room (idle or fresh).
func (l *connLimiter) counts() (open, idle int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.open {
		if c.state.Load() != 0 {
			idle++
		}
	}
	return len(l.open), idle
}

// Close closes the connection and gives its place back.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	l := c.l
	l.mu.Lock()
	if !c.gone {
		c.gone = true
		delete(l.open, c)
		l.changed.Broadcast()
	}
	l.mu.Unlock()
	return err
}

// CloseWrite shuts the writing side down, as net/http does before closing
// a connection whose request body it did not read (so that the client
// reads the answer rather than a reset).
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
