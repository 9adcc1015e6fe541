package daemon

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
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

	evictLog *core.LogThrottle // idle connections closed to make room
	waitLog  *core.LogThrottle // no place to free: new clients wait
	fdLog    *core.LogThrottle // accept failed for want of descriptors
	errLog   *core.LogThrottle // accept failed otherwise

	mu      sync.Mutex
	changed *sync.Cond // a connection closed or went idle, or the listener closed
	open    int        // connections accepted and not closed
	idle    list.List  // of *limitedConn between requests, idle longest first
	fresh   list.List  // of *limitedConn before their first request, oldest first
	closed  bool       // the listener is closed
	evicted int        // idle connections closed to make room, since start
	waiting bool       // Accept waits on changed: only then are state changes signalled
}

// limitedConn is a connection the connLimiter accepted: its Close gives
// its place back.
type limitedConn struct {
	net.Conn
	l    *connLimiter
	once sync.Once

	// Guarded by l.mu.
	elem  *list.Element // in l.idle or l.fresh (in) while there
	in    *list.List
	since time.Time // on l.fresh since
	gone  bool      // closed
}

// newConnLimiter wraps ln to hold at most bound connections (0: none) in
// a process allowed nofile descriptors, logging to log.
func newConnLimiter(ln net.Listener, bound int, nofile uint64, log *slog.Logger) *connLimiter {
	l := &connLimiter{
		Listener: ln,
		max:      bound,
		grace:    freshGrace,
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
	for l.max > 0 && l.open >= l.max && !l.closed {
		wait := l.evictableLocked()
		if wait == 0 {
			l.mu.Unlock()
			l.closeIdlest()
			l.mu.Lock()
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
		if !told {
			told = true
			open := l.open
			l.mu.Unlock()
			l.waitLog.Warn(context.Background(), slog.Int("max_connections", l.max), slog.Uint64("nofile", l.nofile), slog.Int("open", open))
			l.mu.Lock()
			continue
		}
		l.waiting = true
		l.changed.Wait()
		l.waiting = false
		if wake != nil {
			wake.Stop()
			wake = nil
		}
	}
	if l.closed {
		l.mu.Unlock()
		_ = c.Close()
		return nil, &net.OpError{Op: "accept", Net: l.Addr().Network(), Addr: l.Addr(), Err: net.ErrClosed}
	}
	l.open++
	l.mu.Unlock()
	return &limitedConn{Conn: c, l: l}, nil
}

// Close closes the listener and ends a wait for room.
func (l *connLimiter) Close() error {
	l.mu.Lock()
	l.closed = true
	l.changed.Broadcast()
	l.mu.Unlock()
	return l.Listener.Close()
}

// evictableLocked says when a connection may be closed to make room: 0
// now, a duration when the oldest new connection's grace ends, -1 when
// none may be (every connection is busy); l.mu held.
func (l *connLimiter) evictableLocked() time.Duration {
	if l.idle.Len() > 0 {
		return 0
	}
	front := l.fresh.Front()
	if front == nil {
		return -1
	}
	return max(0, l.grace-time.Since(front.Value.(*limitedConn).since))
}

// closeIdlest closes the keep-alive connection idle longest, else the
// connection waiting longest for its first request once its grace is
// over, if there is one, and says so (throttled).
func (l *connLimiter) closeIdlest() {
	l.mu.Lock()
	front := l.idle.Front()
	if front == nil && l.evictableLocked() == 0 {
		front = l.fresh.Front()
	}
	if front == nil {
		l.mu.Unlock()
		return
	}
	victim := front.Value.(*limitedConn)
	victim.leaveLocked()
	l.evicted++
	open, idle, evicted := l.open, l.idle.Len()+l.fresh.Len(), l.evicted
	l.mu.Unlock()
	_ = victim.Close()
	l.evictLog.Warn(context.Background(), slog.Int("max_connections", l.max), slog.Uint64("nofile", l.nofile),
		slog.Int("open", open), slog.Int("idle", idle), slog.Int("closed_total", evicted))
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
		l.mu.Lock()
		open := l.open
		l.mu.Unlock()
		l.fdLog.Warn(context.Background(), slog.Uint64("nofile", l.nofile), slog.Int("max_connections", l.max),
			slog.Int("open", open), slog.String("err", err.Error()))
		l.closeIdlest()
		return
	}
	l.errLog.Warn(context.Background(), slog.String("err", err.Error()))
}

// connState is the http.Server's ConnState hook: it keeps the lists of
// the connections that may be closed to make room, idle (between
// requests) and fresh (accepted, first request not read yet).
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lc.leaveLocked()
	if lc.gone {
		return
	}
	switch st {
	case http.StateIdle:
		lc.in = &l.idle
	case http.StateNew:
		lc.in, lc.since = &l.fresh, time.Now()
	default:
		return
	}
	lc.elem = lc.in.PushBack(lc)
	if l.waiting { // every request goes idle: no signal unless Accept waits
		l.changed.Broadcast()
	}
}

// counts returns the connections open, and those of them that may be
// closed to make room (idle or fresh).
func (l *connLimiter) counts() (open, idle int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.idle.Len() + l.fresh.Len()
}

// leaveLocked takes c off the list it is on, if any; c.l.mu held.
func (c *limitedConn) leaveLocked() {
	if c.elem != nil {
		c.in.Remove(c.elem)
		c.elem, c.in = nil, nil
	}
}

// Close closes the connection and gives its place back.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		l := c.l
		l.mu.Lock()
		c.leaveLocked()
		c.gone = true
		l.open--
		l.changed.Broadcast()
		l.mu.Unlock()
	})
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
