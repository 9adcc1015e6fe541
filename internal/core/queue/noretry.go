package queue

import "errors"

// ErrNoRetry marks a handler's failure as final: the attempt fails and the
// job goes dead at once, whatever retries it has left (a payload its
// receiver can never accept, an answer that will not change). A handler
// returns it wrapped, best by NoRetry (queue.NoRetry(fmt.Errorf("bad
// address %q", a))), or with %w, which puts its text in the message
// ("bad address "x": final failure"); any wrapping above that keeps it, as
// errors.Is finds it. The job's last_error is the failure's message with
// NotRetried appended, also for a job with no retry left (max_retries 0):
// it says the handler judged the failure final. It does not apply to a run its context ended (a
// timeout, a cancel, a lost lease, a shutdown): those are retried, or
// dropped, as before. It wins over a RetryAfterError.
var ErrNoRetry = errors.New("final failure")

// NotRetried ends the last_error of a job that went dead by a failure not
// to retry (ErrNoRetry).
const NotRetried = " (not retried)"

// NoRetry returns err marked not to be retried (see ErrNoRetry): its
// message is err's, errors.Is finds ErrNoRetry in it, and errors.Is and
// errors.As find what they found in err. A nil err stays nil.
func NoRetry(err error) error {
	if err == nil {
		return nil
	}
	return &noRetryError{err}
}

// noRetryError is NoRetry's error.
type noRetryError struct{ err error }

func (e *noRetryError) Error() string        { return e.err.Error() }
func (e *noRetryError) Unwrap() error        { return e.err }
func (e *noRetryError) Is(target error) bool { return target == ErrNoRetry }
