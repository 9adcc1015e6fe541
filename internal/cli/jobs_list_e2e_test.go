package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestE2EJobsListOffset: `jobs list --offset` pages one queue's jobs of one
// status the same through a daemon and over --redis: the two drivers answer
// the same pages; pages concatenated are the one-request listing (pending
// jobs, read as a window of the list, and scheduled ones, of the sorted
// set); a page past the end is empty; piped, a page is its rows alone; and
// an offset past queue.MaxListDepth, a negative one, or one without a queue
// or a status is exit 2 with one line on either driver.
func TestE2EJobsListOffset(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=pg:"}, "--workers", "0")
	envs := drivers(t, d, r, "pg:")
	for i := range 7 {
		mustCLI(t, envs[i%2].env, "jobs", "enqueue", "echo", "--payload", fmt.Sprint(i), "--queue", "pg")
		mustCLI(t, envs[i%2].env, "jobs", "enqueue", "echo", "--payload", fmt.Sprint(i), "--queue", "pg2", "--delay", fmt.Sprintf("%dh", 1+i))
	}
	listed := func(env map[string]string, args ...string) []string {
		t.Helper()
		var jobs []queue.Job
		out := mustCLI(t, env, append(append([]string{"jobs", "list"}, args...), "-o", "json")...)
		if err := json.Unmarshal([]byte(out), &jobs); err != nil {
			t.Fatalf("jobs list %v -o json: %v\n%s", args, err, out)
		}
		ids := []string{}
		for _, j := range jobs {
			ids = append(ids, j.ID)
		}
		return ids
	}
	for _, filter := range [][]string{{"--queue", "pg", "--status", "pending"}, {"--queue", "pg2", "--status", "scheduled"}} {
		var byDriver [][]string
		for _, de := range envs {
			whole := listed(de.env, filter...)
			if len(whole) < 7 {
				t.Fatalf("%s: jobs list %v: %d jobs, want at least 7", de.name, filter, len(whole))
			}
			var paged []string
			for off := 0; off < len(whole); off += 3 {
				paged = append(paged, listed(de.env, append(filter, "--limit", "3", "--offset", fmt.Sprint(off))...)...)
			}
			if diff := cmp.Diff(whole, paged); diff != "" {
				t.Errorf("%s: jobs list %v in pages of 3 (-whole +pages):\n%s", de.name, filter, diff)
			}
			if got := listed(de.env, append(filter, "--offset", fmt.Sprint(len(whole)))...); len(got) != 0 {
				t.Errorf("%s: jobs list %v --offset %d: %v, want none", de.name, filter, len(whole), got)
			}
			// Piped, a page is its rows alone: no footer.
			if out := mustCLI(t, de.env, append(append([]string{"jobs", "list"}, filter...), "--limit", "2", "--offset", "1")...); strings.Count(out, "\n") != 2 {
				t.Errorf("%s: jobs list %v --limit 2 --offset 1 piped: %q, want 2 rows", de.name, filter, out)
			}
			byDriver = append(byDriver, paged)
		}
		if diff := cmp.Diff(byDriver[0], byDriver[1]); diff != "" {
			t.Errorf("jobs list %v in pages over api and redis (-api +redis):\n%s", filter, diff)
		}
	}
	for _, de := range envs {
		wantFail(t, de.env, ExitUsage, fmt.Sprintf("--offset plus --limit must be at most %d", queue.MaxListDepth),
			"jobs", "list", "--offset", fmt.Sprint(queue.MaxListDepth), "--limit", "1")
		wantFail(t, de.env, ExitUsage, "--offset must be 0 or more", "jobs", "list", "--offset", "-3")
		wantFail(t, de.env, ExitUsage, queue.PageNeedsQueueAndStatus, "jobs", "list", "--offset", "3", "--status", "pending")
	}
}
