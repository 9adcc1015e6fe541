package ratelimit

import (
	"sync/atomic"
	"time"
)

// Clock tells the time. Production uses SystemClock; tests use a fake one so
// that scripted sequences give exact admission counts.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// micros converts t to Unix microseconds, the unit of all bucket arithmetic.
func micros(t time.Time) int64 { return t.UnixMicro() }

// MicrosOf returns a function reading Unix microseconds from c. For
// SystemClock it is SystemClock.NowMicros, which reads one monotonic clock
// instead of time.Now's two.
func MicrosOf(c Clock) func() int64 {
	if _, ok := c.(SystemClock); ok {
		return SystemClock{}.NowMicros
	}
	return func() int64 { return c.Now().UnixMicro() }
}

// anchor pairs a wall-clock reading (with its monotonic reading) with the
// same instant in Unix microseconds.
type anchor struct {
	at     time.Time
	micros int64
	_      [32]byte // a line of its own: every decision reads it, and it is written once a second
}

var sysAnchor atomic.Pointer[anchor]

// reanchorEvery bounds how far NowMicros may follow the monotonic clock
// before it reads the wall clock again (an NTP step shows within a second).
const reanchorEvery = time.Second

// NowMicros returns the current Unix time in microseconds: the last wall
// clock reading (at most a second old) advanced by the monotonic clock, so
// that one vDSO read serves where time.Now makes two.
func (SystemClock) NowMicros() int64 {
	if a := sysAnchor.Load(); a != nil {
		if d := time.Since(a.at); d >= 0 && d < reanchorEvery {
			return a.micros + d.Microseconds()
		}
	}
	now := time.Now()
	sysAnchor.Store(&anchor{at: now, micros: now.UnixMicro()})
	return now.UnixMicro()
}
