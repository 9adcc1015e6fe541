package brokertest

import (
	"time"

	"github.com/refrakt/refrakt/internal/fakeclock"
)

// Clock is a fake queue.Clock that moves only when told.
type Clock = fakeclock.Clock

// NewClock returns a clock at a fixed, millisecond-aligned time.
func NewClock() *Clock { return fakeclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) }
