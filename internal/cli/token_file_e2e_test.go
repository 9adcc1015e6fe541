package cli

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/refrakt/refrakt/internal/daemontest"
)

// TestE2ETokenFileOnlyForLoopback runs the real binary: the token file,
// which holds the local daemon's developer token, goes to a server on a
// loopback address (127.0.0.0/8, ::1, localhost) and to no other; there
// only REFRAKT_TOKEN or --token sends one, and a 401 says why none was
// sent. A server elsewhere is reached through an HTTP proxy (HTTP_PROXY),
// the test's listener, which sees what would have gone to it.
func TestE2ETokenFileOnlyForLoopback(t *testing.T) {
	var mu sync.Mutex
	var seen []string // "host authorization" of each request
	listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Host+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"code":"unauthorized","message":"a valid bearer token is required"}}`)
	}))
	defer listener.Close()
	port := listener.URL[strings.LastIndexByte(listener.URL, ':')+1:]
	state := t.TempDir()
	writeTokenFile(t, state, "local-dev-token")
	bin := daemontest.Binary(t)

	const remote = "staging.example.invalid:8080"
	tests := []struct {
		name     string
		server   string
		token    string // REFRAKT_TOKEN
		wantSeen string
		want     string // in the one line of stderr
	}{
		{"remote, no token", "http://" + remote, "", remote + " ",
			"(the token file is sent only to a daemon on a loopback address: give this daemon's token with REFRAKT_TOKEN, or --token, which ps shows)"},
		{"remote, a token given", "http://" + remote, "given-token", remote + " Bearer given-token",
			"(the daemon rejected the token given with REFRAKT_TOKEN or --token)"},
		{"127.0.0.1", listener.URL, "", "127.0.0.1:" + port + " Bearer local-dev-token", "read from the token file"},
		{"localhost", "http://localhost:" + port, "", "localhost:" + port + " Bearer local-dev-token", "read from the token file"},
		// Spellings of localhost that net/http sends through HTTP_PROXY
		// (here the listener): the token file's token must not go there.
		{"localhost.", "http://localhost.:" + port, "", "localhost.:" + port + " ",
			"(the token file is sent only to a daemon on a loopback address: give this daemon's token with REFRAKT_TOKEN, or --token, which ps shows)"},
		{"LOCALHOST", "http://LOCALHOST:" + port, "", "LOCALHOST:" + port + " ",
			"(the token file is sent only to a daemon on a loopback address: give this daemon's token with REFRAKT_TOKEN, or --token, which ps shows)"},
		{"IPv4-mapped loopback", "http://[::ffff:127.0.0.1]:" + port, "", "[::ffff:127.0.0.1]:" + port + " Bearer local-dev-token", "read from the token file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			cmd := exec.Command(bin, "jobs", "list")
			cmd.Env = []string{"HOME=" + state, "XDG_STATE_HOME=" + state, "REFRAKT_SERVER=" + tt.server,
				"HTTP_PROXY=" + listener.URL}
			if tt.token != "" {
				cmd.Env = append(cmd.Env, "REFRAKT_TOKEN="+tt.token)
			}
			var errOut bytes.Buffer
			cmd.Stderr = &errOut
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != ExitFailed {
				t.Errorf("exit %v, want %d; stderr %q", err, ExitFailed, errOut.String())
			}
			if s := errOut.String(); strings.Count(s, "\n") != 1 || !strings.Contains(s, tt.want) {
				t.Errorf("stderr %q, want one line containing %q", s, tt.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 1 || seen[0] != tt.wantSeen {
				t.Errorf("requests %q, want one: %q", seen, tt.wantSeen)
			}
		})
	}
}
