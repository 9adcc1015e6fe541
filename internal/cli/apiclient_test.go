package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTokenHint: after a 401 the CLI says where the token came from; a
// token given by flag or variable is not answered with "give a token".
func TestTokenHint(t *testing.T) {
	tests := []struct {
		c         APIClient
		want, not string
	}{
		{APIClient{}, "give a token with --token or REFRAKT_TOKEN", "rejected"},
		{APIClient{Token: "x"}, "the daemon rejected the token given with --token or REFRAKT_TOKEN", "give a token"},
		{APIClient{Token: "x", TokenFile: "/s/refrakt/token"}, "read from the token file /s/refrakt/token", "given with"},
	}
	for _, tt := range tests {
		got := tt.c.tokenHint()
		if !strings.Contains(got, tt.want) || strings.Contains(got, tt.not) {
			t.Errorf("%+v: hint %q, want %q and not %q", tt.c, got, tt.want, tt.not)
		}
	}
}

// TestOutageNamesTheDaemon: a daemon that answers it cannot serve (503:
// its backend down or still connecting) exits 3 with one line naming it,
// like a daemon that cannot be reached; other answers are the daemon's
// message alone.
func TestOutageNamesTheDaemon(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		wantCode int
		want     string // the line after "refrakt: " and the daemon's URL
	}{
		{"backend not connected yet", 503, `{"error":{"code":"unavailable","message":"backend not reachable yet; retrying (the daemon's log says why)"}}`,
			ExitUnreachable, ": backend not reachable yet; retrying (the daemon's log says why)"},
		{"backend lost", 503, `{"error":{"code":"unavailable","message":"the job queue is unavailable"}}`,
			ExitUnreachable, ": the job queue is unavailable"},
		{"a 503 from a proxy", 503, `upstream down`, ExitUnreachable, ": GET /api/dev/jobs: 503 Service Unavailable"},
		{"not an outage", 409, `{"error":{"code":"conflict","message":"busy"}}`, ExitFailed, "busy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			code, _, stderr := runCLI(t, map[string]string{"REFRAKT_SERVER": srv.URL, "REFRAKT_TOKEN": "x"}, "jobs", "list")
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.wantCode, stderr)
			}
			want := "refrakt: " + tt.want + "\n"
			if tt.wantCode == ExitUnreachable {
				want = "refrakt: " + srv.URL + tt.want + "\n"
			}
			if diff := cmp.Diff(want, stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}
