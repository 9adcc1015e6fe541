package daemon

import (
	"strings"
	"testing"
)

// TestPublicCronNeedsDeveloper: a cron job recurs without end, as an
// interval job does, so the public routes refuse it with 403 unless the
// request carries the developer token, storing nothing; with the token, or
// on the developer enqueue, it is taken, scheduled, and its schedule shown
// by GET /run/{id} and the developer listing. A bad schedule is 400 JSON
// with one line naming the field and the value (a step that overflows too,
// not a recovered panic's 500).
func TestPublicCronNeedsDeveloper(t *testing.T) {
	s := newTestServer(t)
	for _, path := range []string{"/run", "/assistant"} {
		for _, token := range []string{"", opToken} {
			resp, body := do(t, s, "POST", path, token, `{"type":"ping","cron":"*/5 * * * *","timeout_ms":1}`)
			msg := errMessage(body)
			if resp.StatusCode != 403 || errCode(body) != "forbidden" || !strings.Contains(msg, "developer token") ||
				!strings.Contains(msg, "refrakt jobs enqueue --cron") {
				t.Errorf("%s with cron, token %q: %d %v, want 403 forbidden naming the developer token", path, token, resp.StatusCode, body)
			}
		}
	}
	if ids := devJobIDs(t, s); len(ids) != 0 {
		t.Fatalf("refused cron jobs stored: %v", ids)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"type":"ping","cron":"61 * * * *"}`, "cron: minute 61 out of range 0-59"},
		{`{"type":"ping","cron":"@daily","timezone":"Mars/Base"}`, `cron: timezone "Mars/Base" is not an IANA zone name`},
		{`{"type":"ping","cron":"@daily","interval_seconds":60}`, "cron and interval_seconds are two schedules: give one"},
		{`{"type":"ping","timezone":"Europe/Paris"}`, "timezone is only for a cron schedule: add cron"},
		{`{"type":"ping","cron":"1-5/9223372036854775807 * * * *"}`, "cron: minute step 9223372036854775807 larger than the field's range 0-59"},
		{`{"type":"ping","cron":"0 0 31 12 */7","timezone":"posix/Europe/Paris"}`, `cron: timezone "posix/Europe/Paris" is not an IANA zone name`},
	} {
		for _, path := range []string{"/run", "/api/dev/jobs/enqueue"} {
			resp, body := do(t, s, "POST", path, devToken, tc.body)
			if resp.StatusCode != 400 || errCode(body) != "invalid" || errMessage(body) != tc.want {
				t.Errorf("%s %s: %d %v, want 400 %q", path, tc.body, resp.StatusCode, body, tc.want)
			}
		}
	}
	resp, body := do(t, s, "POST", "/run", devToken, `{"type":"ping","cron":"0 3 * * *","timezone":"Europe/Paris"}`)
	if resp.StatusCode != 202 || str(body, "status") != "scheduled" || str(body, "cron") != "0 3 * * *" || str(body, "timezone") != "Europe/Paris" {
		t.Fatalf("/run with cron and the developer token: %d %v, want 202 scheduled with its schedule", resp.StatusCode, body)
	}
	id := str(body, "id")
	resp, body = do(t, s, "GET", "/run/"+id, "", "")
	if resp.StatusCode != 200 || str(body, "cron") != "0 3 * * *" || str(body, "timezone") != "Europe/Paris" || !strings.HasSuffix(str(body, "run_at"), ":00:00Z") {
		t.Errorf("GET /run/{id}: %d %v, want the schedule and a run_at on the hour", resp.StatusCode, body)
	}
	resp, body = do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping","cron":"@hourly"}`)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("developer enqueue with cron: %d %v", resp.StatusCode, body)
	}
	resp, body = do(t, s, "GET", "/api/dev/jobs", devToken, "")
	crons := map[string]bool{}
	for _, j := range body["jobs"].([]any) {
		crons[str(j.(map[string]any), "cron")] = true
	}
	if resp.StatusCode != 200 || !crons["0 3 * * *"] || !crons["@hourly"] {
		t.Errorf("developer listing: %d %v, want both schedules", resp.StatusCode, body)
	}
}
