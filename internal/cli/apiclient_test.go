package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTokenHint: after a 401 the CLI says where the token came from; a
// token given by flag or variable is not answered with "give a token". The
// advice names REFRAKT_TOKEN before --token, whose value ps shows.
func TestTokenHint(t *testing.T) {
	tests := []struct {
		c         APIClient
		want, not string
	}{
		{APIClient{}, "give a token with REFRAKT_TOKEN, or --token, which ps shows", "rejected"},
		{APIClient{Token: "x"}, "the daemon rejected the token given with REFRAKT_TOKEN or --token", "give a token"},
		{APIClient{Token: "x", TokenFile: "/s/refrakt/token"}, "read from the token file /s/refrakt/token", "given with"},
		{APIClient{Remote: true}, "the token file is sent only to a daemon on a loopback address: give this daemon's token with REFRAKT_TOKEN", "rejected"},
	}
	for _, tt := range tests {
		got := tt.c.tokenHint()
		if !strings.Contains(got, tt.want) || strings.Contains(got, tt.not) {
			t.Errorf("%+v: hint %q, want %q and not %q", tt.c, got, tt.want, tt.not)
		}
		if env, flag := strings.Index(got, "REFRAKT_TOKEN"), strings.Index(got, "--token"); env < 0 || flag < env {
			t.Errorf("%+v: hint %q, want REFRAKT_TOKEN before --token", tt.c, got)
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

// redirector answers every request with status and Location target+path
// (when target is not empty) or the location as given; elsewhere counts
// the requests that reached the redirect's target, and the tokens among
// them.
type redirector struct {
	srv                *httptest.Server
	elsewhere          *httptest.Server
	mu                 sync.Mutex
	reached, withToken int
}

func newRedirector(t *testing.T, status int, location func(elsewhere, path string) string) *redirector {
	t.Helper()
	r := &redirector{}
	r.elsewhere = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reached++
		if req.Header.Get("Authorization") != "" {
			r.withToken++
		}
		r.mu.Unlock()
		_, _ = io.WriteString(w, "[]")
	}))
	t.Cleanup(r.elsewhere.Close)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Location", location(r.elsewhere.URL, req.URL.RequestURI()))
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// TestRedirectIsNotFollowed: a server that answers a redirect is not
// followed, so that no token goes to another port, host or scheme: the CLI
// exits 3 with one line naming where the redirect points (without its
// password) and, when it is the same route elsewhere, the --server to give.
// The token file's token goes nowhere either.
func TestRedirectIsNotFollowed(t *testing.T) {
	state := t.TempDir()
	writeTokenFile(t, state, "token-from-the-file")
	tests := []struct {
		name     string
		status   int
		location func(elsewhere, path string) string
		env      map[string]string
		want     func(srv, elsewhere string) string // after "refrakt: "
	}{
		{"same route elsewhere, token given", http.StatusTemporaryRedirect,
			func(elsewhere, path string) string { return elsewhere + path },
			map[string]string{"REFRAKT_TOKEN": "SEKRITcliToken123456"},
			func(srv, elsewhere string) string {
				return srv + " answered 307 Temporary Redirect to " + elsewhere + "/api/dev/jobs: refrakt follows no redirect," +
					" so that the token goes nowhere else (if the daemon is there, give --server " + elsewhere + ")"
			}},
		{"a password in the location, the token file's token", http.StatusMovedPermanently,
			func(elsewhere, path string) string {
				return strings.Replace(elsewhere, "http://", "http://u:SEKRITloc@", 1) + "/prefix" + path
			},
			map[string]string{"XDG_STATE_HOME": state},
			func(srv, elsewhere string) string {
				at := strings.Replace(elsewhere, "http://", "http://u:xxxxx@", 1) + "/prefix"
				return srv + " answered 301 Moved Permanently to " + at + "/api/dev/jobs: refrakt follows no redirect," +
					" so that the token goes nowhere else (if the daemon is there, give --server " + at + ")"
			}},
		{"another route, relative", http.StatusFound,
			func(string, string) string { return "/login" },
			map[string]string{"REFRAKT_TOKEN": "x"},
			func(srv, _ string) string {
				return srv + " answered 302 Found to " + srv + "/login: refrakt follows no redirect, so that the token goes nowhere else"
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRedirector(t, tt.status, tt.location)
			env := map[string]string{"REFRAKT_SERVER": r.srv.URL, "XDG_STATE_HOME": t.TempDir()}
			for k, v := range tt.env {
				env[k] = v
			}
			code, _, stderr := runCLI(t, env, "jobs", "list")
			if code != ExitUnreachable {
				t.Errorf("exit %d, want %d; stderr %q", code, ExitUnreachable, stderr)
			}
			if diff := cmp.Diff("refrakt: "+tt.want(r.srv.URL, r.elsewhere.URL)+"\n", stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.reached != 0 {
				t.Errorf("the redirect was followed: %d requests reached its target, %d with a token", r.reached, r.withToken)
			}
		})
	}
}

// TestRedirectWithUnparseableLocationNotQuoted (sec31 NIT 5): Go's client
// parses a redirect's Location before noRedirect runs, and its error for
// one that does not parse quoted it whole, user info and all. The CLI
// names the redirect without it: exit 3, one line, no piece of it.
func TestRedirectWithUnparseableLocationNotQuoted(t *testing.T) {
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusMovedPermanently} {
		r := newRedirector(t, status, func(elsewhere, path string) string {
			return "http://u:p/SECRET@" + strings.TrimPrefix(elsewhere, "http://") + path
		})
		code, _, stderr := runCLI(t, map[string]string{"REFRAKT_SERVER": r.srv.URL, "REFRAKT_TOKEN": "x", "XDG_STATE_HOME": t.TempDir()}, "jobs", "list")
		if code != ExitUnreachable || strings.Contains(stderr, "SECRET") || strings.Contains(stderr, "u:p") {
			t.Errorf("%d with a Location that does not parse: exit %d, stderr %q; want %d, the Location not quoted", status, code, stderr, ExitUnreachable)
		}
		want := fmt.Sprintf("refrakt: %s answered %d %s to a Location that does not parse (not shown: it may hold a password): refrakt follows no redirect, so that the token goes nowhere else\n",
			r.srv.URL, status, http.StatusText(status))
		if diff := cmp.Diff(want, stderr); diff != "" {
			t.Errorf("stderr (-want +got):\n%s", diff)
		}
		r.mu.Lock()
		if r.reached != 0 {
			t.Errorf("the redirect was followed: %d requests reached its target", r.reached)
		}
		r.mu.Unlock()
	}
}
