package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/cron"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestE2ECron: the binary's `jobs enqueue ping --cron '*/5 * * * *'`, over
// a real daemon's API and straight over its Redis, makes a job scheduled
// at the next 5-minute boundary; `jobs get` shows the schedule and the
// next run, `jobs list -o json` the schedule; `jobs run ID` runs it now
// and it is scheduled again on the next boundary after the run. A bad
// schedule or zone, or --cron with --interval, exits 2 with one line and
// stores nothing; the public POST /run with cron and no token is 403.
func TestE2ECron(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=cron:"}, "--workers", "0")
	every5, err := cron.Parse("*/5 * * * *", "")
	if err != nil {
		t.Fatal(err)
	}
	// onBoundary checks that at is the first 5-minute boundary after an
	// instant between from and to (the job's own recorded times, which
	// bound the clock reading that computed it): exact when no boundary
	// lies between them, and right whichever was read when one does.
	onBoundary := func(t *testing.T, what string, at, from, to time.Time) {
		t.Helper()
		if !every5.Matches(at) || at.Second() != 0 || at.Nanosecond() != 0 || at.Before(every5.Next(from)) || at.After(every5.Next(to)) {
			t.Errorf("%s: run_at %s, want the first 5-minute boundary after an instant of %s to %s", what, at, from, to)
		}
	}
	for _, de := range drivers(t, d, r, "cron:") {
		t.Run(de.name, func(t *testing.T) {
			q := "cron-" + de.name
			before := time.Now()
			code, out, errOut := binCLI(t, de.env, "jobs", "enqueue", "ping", "--cron", "*/5 * * * *", "--queue", q)
			id := strings.TrimSpace(out)
			if code != ExitOK || id == "" {
				t.Fatalf("jobs enqueue --cron: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			j := jobJSON(t, de.env, "jobs", "get", id)
			if j.Status != queue.StatusScheduled || j.Cron != "*/5 * * * *" {
				t.Errorf("enqueued: %s %q, want scheduled with its cron", j.Status, j.Cron)
			}
			onBoundary(t, "enqueued", j.RunAt, before, j.EnqueuedAt)
			code, out, _ = binCLI(t, de.env, "jobs", "get", id)
			if code != ExitOK || !strings.Contains(out, "cron\t*/5 * * * *\n") || !strings.Contains(out, "timezone\tUTC\n") ||
				!strings.Contains(out, "next_run\t"+j.RunAt.UTC().Format(time.RFC3339)+"\n") {
				t.Errorf("jobs get: exit %d, stdout %q; want the schedule and the next run", code, out)
			}
			code, out, _ = binCLI(t, de.env, "jobs", "list", "--queue", q, "-o", "json")
			if code != ExitOK || !strings.Contains(out, `"cron": "*/5 * * * *"`) {
				t.Errorf("jobs list -o json: exit %d, %s; want the cron field", code, out)
			}

			j = jobJSON(t, de.env, "jobs", "run", id)
			if j.Status != queue.StatusScheduled || j.Attempts != 1 || string(j.Result) != `"pong"` || j.StartedAt.IsZero() || j.FinishedAt.IsZero() {
				t.Errorf("jobs run: %+v, want it run once and scheduled again", j)
			}
			// Computed from the run's start as Redis recorded it plus its
			// length: between its started_at and its finished_at.
			onBoundary(t, "after jobs run", j.RunAt, j.StartedAt, j.FinishedAt)

			for _, bad := range []struct {
				args []string
				want string
			}{
				{[]string{"--cron", "61 * * * *"}, "--cron: minute 61 out of range 0-59"},
				{[]string{"--cron", "0 0 30 2 *"}, `--cron: "0 0 30 2 *" never fires (no day of any year matches its day and month fields)`},
				{[]string{"--cron", "@daily", "--timezone", "Mars/Base"}, `--timezone: timezone "Mars/Base" is not an IANA zone name`},
				{[]string{"--cron", "@daily", "--interval", "1m"}, "--cron and --interval are two schedules: give one"},
				{[]string{"--cron", "@daily", "--delay", "1m"}, "--cron decides the first run: drop --delay"},
				{[]string{"--timezone", "Europe/Paris"}, "--timezone is only for a --cron schedule: add --cron"},
			} {
				code, out, errOut := binCLI(t, de.env, append([]string{"jobs", "enqueue", "ping", "--queue", q}, bad.args...)...)
				if code != ExitUsage || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, bad.want) {
					t.Errorf("jobs enqueue %q: exit %d, stdout %q, stderr %q; want exit 2 and one line %q", bad.args, code, out, errOut, bad.want)
				}
			}
			if got := listIDs(t, de.env, "--queue", q); len(got) != 1 {
				t.Errorf("jobs of %s: %v, want the one cron job (the refused stored nothing)", q, got)
			}
		})
	}

	t.Run("public route", func(t *testing.T) {
		for _, tc := range []struct {
			token string
			want  int
		}{{"", http.StatusForbidden}, {d.Token, http.StatusAccepted}} {
			req, err := http.NewRequest("POST", d.URL+"/run", strings.NewReader(`{"type":"ping","cron":"*/5 * * * *"}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("POST /run with cron, token given %v: %d %v, want %d", tc.token != "", resp.StatusCode, body, tc.want)
			}
		}
		resp, err := http.Post(d.URL+"/run", "application/json", strings.NewReader(`{"type":"ping","cron":"61 * * * *"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		// Without the token the schedule is refused before it is read.
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST /run with a bad cron and no token: %d %+v, want 403", resp.StatusCode, body)
		}
	})
}
