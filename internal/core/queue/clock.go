package queue

import "time"

// Clock tells the time. Core code never calls time.Now directly, so tests
// can move time by hand.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns the current time.
func (SystemClock) Now() time.Time { return time.Now() }
