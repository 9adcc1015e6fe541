package daemon

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/daemontest"
)

// TestProbeMethodsDuringStartUp: while the backend is still connecting,
// /healthz and /readyz answer a method they do not take as they do once
// the daemon is ready (405 in the JSON envelope, with the same Allow),
// not 200 for any method.
func TestProbeMethodsDuringStartUp(t *testing.T) {
	t.Parallel()
	// Once ready: what the mux answers.
	ready := newTestServer(t)
	readyResp, _ := do(t, ready, "DELETE", "/healthz", "", "")
	wantAllow := readyResp.Header.Get("Allow")
	if wantAllow == "" {
		t.Fatalf("DELETE /healthz once ready: %d with no Allow; the comparison below would be empty to empty", readyResp.StatusCode)
	}

	// A "Redis" that accepts and never answers: the daemon stays not ready.
	d := daemontest.Start(t, []string{"QUEUE_URL=redis://" + daemontest.TakenAddr(t)})
	type answer struct {
		Status int
		Allow  string
		Code   string
	}
	tests := []struct {
		method, path string
		want         answer
	}{
		{"POST", "/healthz", answer{405, wantAllow, "method_not_allowed"}},
		{"DELETE", "/healthz", answer{405, wantAllow, "method_not_allowed"}},
		{"PUT", "/readyz", answer{405, wantAllow, "method_not_allowed"}},
		{"POST", "/readyz", answer{405, wantAllow, "method_not_allowed"}},
		{"GET", "/healthz", answer{200, "", ""}},
		{"HEAD", "/healthz", answer{200, "", ""}},
		{"GET", "/readyz", answer{503, "", "unavailable"}},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, d.URL+tt.path, strings.NewReader(""))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		got := answer{resp.StatusCode, resp.Header.Get("Allow"), errCode(body)}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s %s while connecting (-want +got):\n%s\nbody: %s", tt.method, tt.path, diff, b)
		}
	}
}

// TestOneWordingWhileConnecting (q27 #6): while the backend connects, every
// answer says so in one wording. It said "backend not connected yet:
// connecting" during the first attempt and "backend not reachable yet;
// retrying" once one had failed, so that `jobs list` and `jobs get`, run a
// moment apart, described one state two ways.
func TestOneWordingWhileConnecting(t *testing.T) {
	t.Parallel()
	// A "Redis" that accepts and never answers: the first attempt lasts
	// its whole 2 s, the next ones too.
	d := daemontest.Start(t, []string{"QUEUE_URL=redis://" + daemontest.TakenAddr(t)})
	messages := func() []string {
		t.Helper()
		var got []string
		for _, path := range []string{"/api/dev/jobs", "/run/AAAAAAAAAAAAAAAAAAAAAA"} {
			resp, b := d.Call("GET", path, "")
			var body map[string]any
			_ = json.Unmarshal(b, &body)
			if resp.StatusCode != 503 {
				t.Fatalf("GET %s while connecting: %d %s, want 503", path, resp.StatusCode, b)
			}
			got = append(got, errMessage(body))
		}
		return got
	}
	first := messages() // during the first attempt
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.Log(), "backend not reachable") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(d.Log(), "backend not reachable") {
		t.Fatalf("no attempt failed within 10 s:\n%s", d.Log())
	}
	then := messages() // once one has failed
	want := "backend not connected yet: the daemon is connecting to it, and retries until it can (its log says why an attempt failed)"
	if diff := cmp.Diff([]string{want, want, want, want}, append(first, then...)); diff != "" {
		t.Errorf("answers during the first attempt, then after a failed one (-want +got):\n%s", diff)
	}
}
