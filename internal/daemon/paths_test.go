package daemon

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestNonCanonicalPathsAreNotRedirected: a path the mux would clean (repeated
// slashes, "." and ".." elements) is answered 404 in the JSON error shape,
// naming the canonical path, never the mux's 307 with an HTML body, which a
// client following it answers by sending its POST again.
func TestNonCanonicalPathsAreNotRedirected(t *testing.T) {
	s := newTestServer(t)
	const id = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		method, path, canonical string
	}{
		{"GET", "//run/" + id, "/run/" + id},
		{"GET", "/run//" + id, "/run/" + id},
		{"GET", "/run/./" + id, "/run/" + id},
		{"GET", "/run/x/../" + id, "/run/" + id},
		{"POST", "//run", "/run"},
		{"POST", "/run/.", "/run"},
		{"POST", "/api/dev/jobs/../jobs/run-next", "/api/dev/jobs/run-next"},
		{"GET", "/healthz/", "/healthz/"}, // canonical: the mux's plain 404, in JSON
		// Escaped slashes are one segment, as the mux reads the path: the
		// id is looked up as sent, not a cleaned path named.
		{"GET", "/run/abc%2F..%2Fdef", "job abc/../def not found"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			body := ""
			if tt.method == "POST" {
				body = `{"type":"ping"}`
			}
			resp, out := do(t, s, tt.method, tt.path, devToken, body)
			msg := errMessage(out)
			type answer struct {
				Status      int
				ContentType string
				Code        string
				Location    string
				Names       bool
			}
			got := answer{resp.StatusCode, resp.Header.Get("Content-Type"), errCode(out), resp.Header.Get("Location"), strings.Contains(msg, tt.canonical)}
			want := answer{404, "application/json", "not_found", "", true}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s %s (-want +got):\n%s\nbody: %v", tt.method, tt.path, diff, out)
			}
		})
	}
}
