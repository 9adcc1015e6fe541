package storetest

import (
	"time"

	"github.com/refrakt/refrakt/internal/fakeclock"
)

// Clock is a fake ratelimit.Clock that moves only when told.
type Clock = fakeclock.Clock

// NewClock returns a clock stopped at a realistic instant (microsecond
// timestamps of today's size are where float arithmetic goes wrong).
func NewClock() *Clock {
	return fakeclock.New(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
}
