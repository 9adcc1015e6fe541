package top

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/refrakt/refrakt/internal/core"
)

// problem labels a failed fetch for the header's second line. A daemon
// that refuses the token answered: that is an authentication problem, not
// a lost connection, and it is not called "disconnected"; nor is a server
// that answers 404 (another path, or not a refrakt daemon); nor is a daemon
// that answers that its backend is down (the source says which answers
// were the daemon's: backendDownError). The message is
// the daemon's, followed by the advice the CLI's API client gives with it
// (where the token came from, how to give one): the line every other
// command prints.
func problem(err error) string {
	switch core.ErrorCode(err) {
	case core.CodeUnauthorized:
		return "authentication failed: " + reason(err) + hint(err)
	case core.CodeForbidden:
		return "not allowed: " + reason(err) + hint(err)
	case core.CodeNotFound:
		// Something answered, not with a snapshot: --server names another
		// path or another server than a refrakt daemon's.
		return "no snapshot at this address (is it the daemon's?): " + reason(err)
	}
	var r redirect
	if errors.As(err, &r) {
		// Not a lost connection: the server answers, and points elsewhere.
		where := r.Location()
		if where == "" {
			where = "another address"
		}
		return "redirected to " + where + ", not followed" + hint(err)
	}
	var w withheld
	if errors.As(err, &w) {
		// Not a lost connection either: a server answers there, another
		// user's, and the token was kept from it.
		return w.TokenWithheld() + hint(err)
	}
	if errors.As(err, new(busyError)) {
		return "daemon busy: " + reason(err)
	}
	if errors.As(err, new(backendDownError)) {
		return "daemon up, backend unavailable: " + reason(err)
	}
	if errors.As(err, new(noDaemonError)) {
		return "server unavailable (not the daemon's answer): " + reason(err)
	}
	// A server answered, with something else than a snapshot or with an
	// error (a 500): not a lost connection either.
	if errors.As(err, new(notSnapshotError)) {
		return "unexpected answer: " + reason(err)
	}
	if ce := (*core.Error)(nil); errors.As(err, &ce) && ce.Code != core.CodeUnavailable {
		return "unexpected answer: " + reason(err)
	}
	return "disconnected: " + reason(err)
}

// redirect is a server's answer that points elsewhere (a 3xx), which the
// CLI's API client reports rather than follows, so that the token goes
// nowhere else. Location is where it points, without a password.
type redirect interface {
	Location() string
}

// withheld is a server the CLI's API client sent nothing to, the token
// file's token being only for a server of the file's owner (another user
// listens there). TokenWithheld says so in a few words.
type withheld interface {
	TokenWithheld() string
}

// hinter is advice for the person at the terminal that an error carries
// apart from its message (the CLI's API client adds it to a 401).
type hinter interface {
	Hint() string
}

// hint returns the advice err carries, "" when none.
func hint(err error) string {
	var h hinter
	if errors.As(err, &h) {
		return h.Hint()
	}
	return ""
}

// reason says in a few words why a fetch failed, for "disconnected: …" on
// an 80-column header: a client's full error repeats the URL the header
// already shows and buries the cause at its end.
func reason(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	var ce *core.Error
	if errors.As(err, &ce) && ce.Message != "" {
		return firstLine(ce.Message)
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return "timeout"
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "cannot resolve " + dns.Name
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return firstLine(op.Err.Error())
	}
	return firstLine(err.Error())
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
