package queue

import (
	"math"
	"math/rand/v2"
	"time"
)

// Backoff computes the delay before a failed job's retry: Base doubled per
// retry (Base, 2·Base, 4·Base, …) up to Cap, then spread by ±Jitter so that
// jobs failing together do not retry together, never past Cap.
type Backoff struct {
	Base   time.Duration // 100ms by default
	Cap    time.Duration // 1h by default
	Jitter float64       // fraction, 0.2 by default: a delay d becomes one in [0.8d, 1.2d]
}

// DefaultBackoff is the backoff of DESIGN §4.
var DefaultBackoff = Backoff{Base: 100 * time.Millisecond, Cap: time.Hour, Jitter: 0.2}

// MinBackoffBase and MaxBackoffCap bound a configured backoff
// (JOB_RETRY_BASE, JOB_RETRY_MAX): a longer cap would hold a failing job
// in the retry set for weeks, out of sight of whoever watches for dead
// jobs.
const (
	MinBackoffBase = time.Millisecond
	MaxBackoffCap  = 7 * 24 * time.Hour
)

// Delay returns the wait before retry number retry (1 for the first retry).
func (b Backoff) Delay(retry int) time.Duration {
	return b.delay(retry, rand.Float64())
}

// delay is Delay with the random number given (in [0,1)), for tests.
func (b Backoff) delay(retry int, r float64) time.Duration {
	if retry < 1 {
		retry = 1
	}
	d := b.Base
	// Stopped before it overflows, whatever the cap (a published value is
	// another process's word).
	for i := 1; i < retry && d < b.Cap && d <= math.MaxInt64/2; i++ {
		d *= 2
	}
	if b.Cap > 0 && d > b.Cap {
		d = b.Cap
	}
	j := time.Duration(float64(d) * (1 + b.Jitter*(2*r-1)))
	if b.Cap > 0 && j > b.Cap {
		// The jitter never takes a delay past Cap: at the cap it spreads
		// below it, over the same width.
		j = time.Duration(float64(b.Cap) * (1 - b.Jitter*r))
	}
	return j
}
