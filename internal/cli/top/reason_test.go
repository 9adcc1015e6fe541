package top

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core"
)

func TestReason(t *testing.T) {
	// A real refused connection, as the HTTP client reports it.
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	_, refused := http.Get(srv.URL)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"a refused connection", fmt.Errorf("cannot reach %s: %w", srv.URL, refused), "connection refused"},
		{"a wrapped errno", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNRESET)}, "connection reset"},
		{"a deadline", fmt.Errorf("fetch: %w", context.DeadlineExceeded), "timeout"},
		{"an unknown host", &net.OpError{Op: "dial", Err: &net.DNSError{Name: "nohost", Err: "no such host"}}, "cannot resolve nohost"},
		{"the daemon's message", core.Errorf(core.CodeUnauthorized, "bad token\n(give a token)"), "bad token"},
		{"anything else", errors.New("boom"), "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, reason(tt.err)); diff != "" {
				t.Errorf("reason (-want +got):\n%s", diff)
			}
		})
	}
}

// withheldError is what the CLI's API client returns when it sent nothing
// to another user's listener.
type withheldError struct{}

func (withheldError) Error() string { return "http://127.0.0.1:8080: …" }
func (withheldError) TokenWithheld() string {
	return "another user listens there (uid 65534, not the token file's owner, uid 0): the token file's token was not sent"
}
func (withheldError) Hint() string { return " (give its token with REFRAKT_TOKEN)" }

func TestProblem(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"a lost connection", errRefused, "disconnected: connection refused"},
		// The API client keeps its hint in the error's chain, apart from
		// the daemon's message.
		{"a rejected token", core.Wrap(core.CodeUnauthorized, errors.New(" (the token was read from the token file /s/refrakt/token and the daemon rejected it: give another with --token or REFRAKT_TOKEN)"), "a valid bearer token is required"),
			"authentication failed: a valid bearer token is required"},
		{"a token without the role", core.Errorf(core.CodeForbidden, "needs the developer role"), "not allowed: needs the developer role"},
		{"a daemon not ready", core.Errorf(core.CodeUnavailable, "backend unavailable (redis)"), "disconnected: backend unavailable (redis)"},
		// A server that answered 404: not a lost connection.
		{"a path that is not the daemon's", core.Errorf(core.CodeNotFound, "no route GET /sub/api/obs/snapshot"),
			"no snapshot at this address (is it the daemon's?): no route GET /sub/api/obs/snapshot"},
		// The daemon's own answer, as HTTPSource marks it.
		{"a daemon whose backend is down", backendDownError{core.Errorf(core.CodeUnavailable, "the job queue is unavailable")},
			"daemon up, backend unavailable: the job queue is unavailable"},
		// The API client kept the token file's token from another user's
		// listener (sec31 LOW 3): not a lost connection.
		{"another user's listener", withheldError{},
			"another user listens there (uid 65534, not the token file's owner, uid 0): the token file's token was not sent (give its token with REFRAKT_TOKEN)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, problem(tt.err)); diff != "" {
				t.Errorf("problem (-want +got):\n%s", diff)
			}
		})
	}
}
