package queue

import (
	"errors"
	"time"
)

// RetryAfterError is a handler's failure that names the least wait before
// the job's retry: a webhook whose answer carried Retry-After (a 429 or a
// 503 from a service that knows when it can take the job again). The
// retry waits After, or the backoff's delay when that is longer, and never
// longer than the backoff's Cap (JOB_RETRY_MAX). A job on its last
// attempt goes dead as with any failure.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }

// Unwrap returns the failure.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// retryDelay is the wait before retry number retry of a run that failed
// with err: b's delay, lengthened to what err asks (RetryAfterError), up
// to b.Cap.
func retryDelay(b Backoff, err error, retry int) time.Duration {
	d := b.Delay(retry)
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > d {
		d = ra.After
		if b.Cap > 0 && d > b.Cap { // the backoff's own delay is never past it
			d = b.Cap
		}
	}
	return d
}
