package daemon

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
)

// publicPost sends body to path of d as the client at xff (the test's
// requests come from loopback, a trusted proxy by default), and returns the
// status and the answer.
func publicPost(t *testing.T, d *daemontest.Daemon, path, xff, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", xff)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v\n%s", path, err, d.Log())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPublicBurstLeavesWorkersForOthers (sec31 MEDIUM 1): on a daemon of
// default settings, one client sends its whole burst of public sleeps at the
// public bound, through /run and through /assistant (whose job stays queued
// when its wait ends), until the rate limit refuses it. Another client's ping
// through /assistant must still be answered within 20 s. With a bound of 10 s
// the burst (10 + 20 jobs) held all four workers for 75 s and the ping timed
// out; at 1 s it holds them for about 8.
func TestPublicBurstLeavesWorkersForOthers(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, nil)
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	const attacker, other = "30.0.0.2", "30.0.0.98"
	sleep := fmt.Sprintf(`{"type":"sleep","payload":{"ms":%d}`, publicMaxSleep.Milliseconds())
	taken := map[string]int{}
	for _, tt := range []struct{ path, body string }{
		{"/run", sleep + `}`},
		{"/assistant", sleep + `,"timeout_ms":1}`},
	} {
		for i := 0; ; i++ {
			if i == 200 {
				t.Fatalf("%s: 200 requests and no 429", tt.path)
			}
			code, body := publicPost(t, d, tt.path, attacker, tt.body)
			if code == http.StatusTooManyRequests {
				break
			}
			if code != http.StatusAccepted && code != http.StatusGatewayTimeout && code != http.StatusOK {
				t.Fatalf("%s sleeping %v: %d %s", tt.path, publicMaxSleep, code, body)
			}
			taken[tt.path]++
		}
	}
	// The default limits: a burst of 10 on run, 20 on assistant.
	if taken["/run"] < 10 || taken["/assistant"] < 20 {
		t.Fatalf("jobs taken from one client: %v, want the default bursts (10 run, 20 assistant)", taken)
	}
	start := time.Now()
	code, body := publicPost(t, d, "/assistant", other, `{"type":"ping","timeout_ms":20000}`)
	if code != http.StatusOK || !strings.Contains(body, `"pong"`) {
		t.Fatalf("another client's ping after one client's burst of %v sleeps (%v): %d after %v: %s",
			publicMaxSleep, taken, code, time.Since(start).Round(time.Millisecond), body)
	}
}
