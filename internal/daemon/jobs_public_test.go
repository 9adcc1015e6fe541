package daemon

import (
	"strconv"
	"strings"
	"testing"

	"github.com/refrakt/refrakt/internal/config"
)

// devJobIDs lists the ids of every job of s, through the developer route.
func devJobIDs(t *testing.T, s *Server) []string {
	t.Helper()
	resp, body := do(t, s, "GET", "/api/dev/jobs", devToken, "")
	if resp.StatusCode != 200 {
		t.Fatalf("list: %d %v", resp.StatusCode, body)
	}
	var ids []string
	for _, j := range body["jobs"].([]any) {
		ids = append(ids, str(j.(map[string]any), "id"))
	}
	return ids
}

// TestPublicRecurringNeedsDeveloper (sec28 HIGH 1): a public job with
// interval_seconds is work without end (six anonymous sleeps recurring
// every second held every worker for good), so the public routes refuse it
// with 403 unless the request carries the developer token; the message
// names both ways to make one. Nothing is stored. Without an interval, or
// with the developer token, the job is taken.
func TestPublicRecurringNeedsDeveloper(t *testing.T) {
	s := newTestServer(t)
	for _, path := range []string{"/run", "/assistant"} {
		for _, token := range []string{"", opToken, "not-a-token-0123456789"} {
			job := `{"type":"sleep","payload":{"ms":1000},"interval_seconds":1}`
			if path == "/assistant" {
				job = `{"type":"sleep","payload":{"ms":1000},"interval_seconds":1,"timeout_ms":1}`
			}
			resp, body := do(t, s, "POST", path, token, job)
			msg := errMessage(body)
			if resp.StatusCode != 403 || errCode(body) != "forbidden" || !strings.Contains(msg, "developer token") ||
				!strings.Contains(msg, "POST /api/dev/jobs/enqueue") || !strings.Contains(msg, "refrakt jobs enqueue --interval") {
				t.Errorf("%s with interval_seconds, token %q: %d %v, want 403 forbidden naming the developer token and enqueue", path, token, resp.StatusCode, body)
			}
		}
	}
	if ids := devJobIDs(t, s); len(ids) != 0 {
		t.Fatalf("refused recurring jobs stored: %v", ids)
	}
	for _, body := range []string{`{"type":"ping","interval_seconds":0}`, `{"type":"ping","interval_seconds":null}`} {
		if resp, out := do(t, s, "POST", "/run", "", body); resp.StatusCode != 202 {
			t.Errorf("/run %s without a token: %d %v, want 202", body, resp.StatusCode, out)
		}
	}
	resp, body := do(t, s, "POST", "/run", devToken, `{"type":"ping","interval_seconds":1}`)
	if resp.StatusCode != 202 || num(body, "interval_seconds") != 1 {
		t.Errorf("/run with interval_seconds and the developer token: %d %v, want 202 recurring", resp.StatusCode, body)
	}
	// On /assistant the job is taken too (no workers here: the wait runs out).
	resp, body = do(t, s, "POST", "/assistant", devToken, `{"type":"ping","interval_seconds":1,"timeout_ms":1}`)
	if resp.StatusCode != 504 && resp.StatusCode != 200 {
		t.Errorf("/assistant with interval_seconds and the developer token: %d %v, want the job taken", resp.StatusCode, body)
	}
	if ids := devJobIDs(t, s); len(ids) != 4 {
		t.Errorf("jobs %v, want the 2 plain and the 2 developer's recurring ones", ids)
	}
}

// TestPublicDelayBounded (sec28 MEDIUM 2): a scheduled job is not pending,
// so admission control does not count it until it is due, and public jobs
// delayed a year piled up past every bound. A public job's delay_ms is at
// most an hour, for every caller of the public routes (400 past it, naming
// the developer enqueue's bound); the developer enqueue keeps the year.
func TestPublicDelayBounded(t *testing.T) {
	s := newTestServer(t)
	const hour = 3600000
	for _, path := range []string{"/run", "/assistant"} {
		for _, token := range []string{"", devToken} {
			for _, delay := range []string{"3600001", "31536000000"} {
				job := `{"type":"ping","delay_ms":` + delay + `}`
				if path == "/assistant" {
					job = `{"type":"ping","timeout_ms":1,"delay_ms":` + delay + `}`
				}
				resp, body := do(t, s, "POST", path, token, job)
				if resp.StatusCode != 400 || errCode(body) != "invalid" || !strings.Contains(errMessage(body), "at most 3600000") ||
					!strings.Contains(errMessage(body), "POST /api/dev/jobs/enqueue, allows up to 31536000000") {
					t.Errorf("%s delay_ms %s, token %q: %d %v, want 400 naming both bounds", path, delay, token, resp.StatusCode, body)
				}
			}
		}
	}
	if ids := devJobIDs(t, s); len(ids) != 0 {
		t.Fatalf("refused delayed jobs stored: %v", ids)
	}
	resp, body := do(t, s, "POST", "/run", "", `{"type":"ping","delay_ms":`+strconv.Itoa(hour)+`}`)
	if resp.StatusCode != 202 || str(body, "status") != "scheduled" {
		t.Errorf("/run delayed an hour: %d %v, want 202 scheduled", resp.StatusCode, body)
	}
	resp, body = do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping","delay_ms":31536000000}`)
	if resp.StatusCode != 202 || str(body, "status") != "scheduled" {
		t.Errorf("developer enqueue delayed a year: %d %v, want 202 scheduled", resp.StatusCode, body)
	}
}

// TestPublicRetriesBounded (growth29 MEDIUM 1): a failed job waiting for its
// retry is not pending, so admission control does not count it, and a
// public fail job with max_retries 100 stayed three days. A public job's
// max_retries is at most 10 (400 past it, naming the developer enqueue's
// bound), for every caller of the public routes; the developer enqueue
// keeps 100.
func TestPublicRetriesBounded(t *testing.T) {
	s := newTestServer(t)
	for _, path := range []string{"/run", "/assistant"} {
		for _, token := range []string{"", devToken} {
			job := `{"type":"fail","max_retries":11}`
			if path == "/assistant" {
				job = `{"type":"fail","timeout_ms":1,"max_retries":11}`
			}
			resp, body := do(t, s, "POST", path, token, job)
			if resp.StatusCode != 400 || errCode(body) != "invalid" || !strings.Contains(errMessage(body), "at most 10") ||
				!strings.Contains(errMessage(body), "POST /api/dev/jobs/enqueue, allows up to 100") {
				t.Errorf("%s max_retries 11, token %q: %d %v, want 400 naming both bounds", path, token, resp.StatusCode, body)
			}
		}
	}
	if ids := devJobIDs(t, s); len(ids) != 0 {
		t.Fatalf("refused jobs stored: %v", ids)
	}
	resp, body := do(t, s, "POST", "/run", "", `{"type":"fail","max_retries":10}`)
	if resp.StatusCode != 202 {
		t.Errorf("/run with max_retries 10: %d %v, want 202", resp.StatusCode, body)
	}
	resp, body = do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"fail","max_retries":100}`)
	if resp.StatusCode != 202 {
		t.Errorf("developer enqueue with max_retries 100: %d %v, want 202", resp.StatusCode, body)
	}
}

// TestPublicPayloadDepthBounded (sec28 MEDIUM 4): a public job's payload
// may nest arrays and objects at most 64 levels: deeper is 400 on POST
// /run and /assistant and stores nothing (9,990 levels in 60 KB made
// `refrakt jobs get -o json` write 1.2 GB). Brackets inside strings do not
// count; the developer enqueue takes deeper payloads.
func TestPublicPayloadDepthBounded(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.RateLimitEnabled = false })
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, path := range []string{"/run", "/assistant"} {
		for _, payload := range []string{nest(65), `{"a":` + nest(64) + `}`, `["` + nest(3) + `",` + nest(65) + `]`, nest(9990)} {
			job := `{"type":"echo","payload":` + payload + `}`
			if path == "/assistant" {
				job = `{"type":"echo","timeout_ms":1,"payload":` + payload + `}`
			}
			resp, body := do(t, s, "POST", path, "", job)
			if resp.StatusCode != 400 || errCode(body) != "invalid" || !strings.Contains(errMessage(body), "more than 64 levels deep") {
				t.Errorf("%s with a payload %d bytes long, nested past 64: %d %v, want 400", path, len(payload), resp.StatusCode, body)
			}
		}
	}
	if ids := devJobIDs(t, s); len(ids) != 0 {
		t.Fatalf("refused deep payloads stored: %v", ids)
	}
	for _, payload := range []string{nest(64), `{"a":` + nest(63) + `}`, `"` + strings.Repeat("[", 1000) + `"`, `["\"` + strings.Repeat("{", 100) + `"]`} {
		if resp, body := do(t, s, "POST", "/run", "", `{"type":"echo","payload":`+payload+`}`); resp.StatusCode != 202 {
			t.Errorf("/run with payload %.40q…: %d %v, want 202", payload, resp.StatusCode, body)
		}
	}
	if resp, body := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"echo","payload":`+nest(200)+`}`); resp.StatusCode != 202 {
		t.Errorf("developer enqueue nested 200 deep: %d %v, want 202", resp.StatusCode, body)
	}
}
