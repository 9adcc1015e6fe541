package ratelimit

import "time"

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
