// Package core holds what every part of refrakt shares: errors that carry a
// code. The code decides the HTTP status in the daemon, the error a client
// reconstructs, and the exit code of the CLI, each in one table.
package core

import (
	"errors"
	"fmt"
	"log/slog"
)

// Error codes. They are part of the API: the daemon sends them in
// {"error":{"code":…}} and the CLI maps them to exit codes.
const (
	CodeInvalid      = "invalid"      // the caller sent something malformed
	CodeNotFound     = "not_found"    // the thing asked for does not exist
	CodeConflict     = "conflict"     // the thing exists but is in the wrong state
	CodeLimited      = "limited"      // a rate limit denied the request
	CodeUnavailable  = "unavailable"  // a backend or admission control refused for now
	CodeUnauthorized = "unauthorized" // no or wrong credentials
	CodeForbidden    = "forbidden"    // right credentials, wrong role
	CodeTooLarge     = "too_large"    // a body over the limit
	CodeTimeout      = "timeout"      // the work did not finish in the time given
	CodeFailed       = "failed"       // the work ran and failed (e.g. a job's handler)
	CodeInternal     = "internal"     // a bug or an unexpected failure
)

// CodeKeyReused is an idempotency key sent again, within its TTL, with
// another request than the one it was first sent with.
const CodeKeyReused = "idempotency_key_reused"

// BusyMessage starts the message of the daemon's 503 for a request over its
// in-flight cap: the daemon is up and busy, nothing behind it is down.
const BusyMessage = "too many requests in flight"

// Error is an error with a code and a message meant for the caller.
type Error struct {
	Code    string
	Message string
	// Err is the cause, kept for logs and errors.Is; never shown to callers.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Message == "" {
		return e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given code whose message is msg and whose
// cause is err.
func Wrap(code string, err error, msg string) *Error {
	return &Error{Code: code, Message: msg, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for nil,
// and CodeInternal for any other error.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the caller-facing message of err: the message of its
// *Error, or a generic one for any other error so internals never leak.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	return "internal error"
}

// CauseAttr is the log attribute "cause" with the cause an *Error in err's
// chain keeps for logs (Redis's NOPERM, READONLY or OOM, a dial failure),
// whose Error() says only the caller-facing message; an empty attribute,
// which handlers leave out, when there is none. Every log line of an
// error that may wrap a backend's carries it beside "err".
func CauseAttr(err error) slog.Attr {
	var e *Error
	if errors.As(err, &e) && e.Err != nil && e.Message != "" {
		return slog.String("cause", e.Err.Error())
	}
	return slog.Attr{}
}
