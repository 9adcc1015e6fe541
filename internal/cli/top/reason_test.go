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
