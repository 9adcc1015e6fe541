package daemon

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
)

// TestShutdownDelayServesNotReady: during SHUTDOWN_DELAY after a stop
// signal, /readyz answers 503 while the rest of the API, workers included,
// goes on as before, with keep-alives off; a second signal ends the delay and
// the stop at once.
func TestShutdownDelayServesNotReady(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, []string{"SHUTDOWN_DELAY=1h"})
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	d.Signal(syscall.SIGTERM)
	d.WaitHTTP("/readyz", http.StatusServiceUnavailable, 15*time.Second)

	resp, b := d.Call(http.MethodGet, "/readyz", "")
	code, body := resp.StatusCode, string(b)
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || code != http.StatusServiceUnavailable || !strings.Contains(e.Error.Message, "stopping") {
		t.Errorf("/readyz during the delay: %d %s, want 503 saying it is stopping", code, body)
	}
	if resp, body := d.Call(http.MethodGet, "/healthz", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz during the delay: %d %s, want 200", resp.StatusCode, body)
	}
	resp, b = d.Call(http.MethodGet, "/api/dev/whoami", "")
	code, body, closing := resp.StatusCode, string(b), resp.Close
	if code != http.StatusOK || !closing {
		t.Errorf("whoami during the delay: %d %s, connection closed after it %v; want 200 and Connection: close", code, body, closing)
	}
	// The workers go on: a job enqueued now runs.
	id := devEnqueue(t, d, `{"type":"echo","payload":{"during":"delay"}}`)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, b := d.Call(http.MethodGet, "/run/"+id, "")
		body := string(b)
		if strings.Contains(body, `"succeeded"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job enqueued during the delay did not run: %s\n%s", body, d.Log())
		}
	}
	if !strings.Contains(d.Log(), "stopping after the shutdown delay") {
		t.Errorf("no line about the delay in the log:\n%s", d.Log())
	}

	d.Signal(syscall.SIGTERM)
	if code := d.Wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d after a second signal during the delay, want 0\n%s", code, d.Log())
	}
	if !strings.Contains(d.Log(), "told to stop again") {
		t.Errorf("the second signal is not in the log:\n%s", d.Log())
	}
}

// TestShutdownDelayThenStops: when the delay is over, the stop runs as it
// does without one, and the daemon exits 0.
func TestShutdownDelayThenStops(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, []string{"SHUTDOWN_DELAY=300ms"})
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	signalled := time.Now()
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d, want 0\n%s", code, d.Log())
	}
	// The stop waited out the delay: a lower bound, which a timer cannot
	// undercut however slow the machine.
	if took := time.Since(signalled); took < 300*time.Millisecond {
		t.Errorf("exited %s after the signal, before the 300ms delay was over", took)
	}
	log := d.Log()
	prev := -1
	for _, line := range []string{"stopping after the shutdown delay", `msg="shutting down"`, "msg=stopped"} {
		i := strings.Index(log, line)
		if i < 0 || i < prev {
			t.Fatalf("%q missing or out of order in the log:\n%s", line, log)
		}
		prev = i
	}
}
