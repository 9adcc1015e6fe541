package daemon

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/redistest"
)

const batchPath = "/api/dev/jobs/enqueue-batch"

// batchIDs are the ids of an enqueue-batch answer, in order.
func batchIDs(t *testing.T, body map[string]any) []string {
	t.Helper()
	js, _ := body["jobs"].([]any)
	ids := make([]string, len(js))
	for i, j := range js {
		ids[i] = str(j.(map[string]any), "id")
	}
	return ids
}

// batchServers runs f on a server of each backend: memory, and Redis.
func batchServers(t *testing.T, prefix string, f func(t *testing.T, s *Server)) {
	r := redistest.Start(t)
	for _, be := range []string{"memory", "redis"} {
		t.Run(be, func(t *testing.T) {
			s := newTestServer(t, noLimits)
			if be == "redis" {
				s, _ = newRedisServer(t, r, noLimits, func(c *config.Config) { c.Prefix = prefix })
			}
			f(t, s)
		})
	}
}

// TestEnqueueBatch: on the memory backend and on Redis, a batch of jobs in
// two queues is 202 with each job as the single enqueue answers it, in the
// request's order, and each is stored; the same batch again (every job
// with its idempotency key) is 200 with the same ids, each marked
// replayed, and nothing more stored.
func TestEnqueueBatch(t *testing.T) {
	batchServers(t, "eb:", testEnqueueBatch)
}

func testEnqueueBatch(t *testing.T, s *Server) {
	body := `{"jobs":[
		{"type":"echo","payload":{"n":0},"queue":"a","idempotency_key":"k0"},
		{"type":"ping","queue":"b","idempotency_key":"k1"},
		{"type":"echo","payload":{"n":2},"queue":"a","delay_ms":60000,"idempotency_key":"k2"}]}`
	resp, first := do(t, s, "POST", batchPath+"?source=cli", devToken, body)
	if resp.StatusCode != 202 {
		t.Fatalf("batch: %d %v, want 202", resp.StatusCode, first)
	}
	ids := batchIDs(t, first)
	wantQueues := []string{"a", "b", "a"}
	wantStatus := []string{"pending", "pending", "scheduled"}
	for i, id := range ids {
		j := first["jobs"].([]any)[i].(map[string]any)
		if id == "" || str(j, "queue") != wantQueues[i] || str(j, "status") != wantStatus[i] || str(j, "source") != "cli" || j["replayed"] != nil {
			t.Errorf("job %d: %v, want queue %s, %s, source cli, not replayed", i, j, wantQueues[i], wantStatus[i])
		}
		resp, got := do(t, s, "GET", "/run/"+id, "", "")
		if resp.StatusCode != 200 || str(got, "queue") != wantQueues[i] {
			t.Errorf("GET job %d: %d %v, want it stored in %s", i, resp.StatusCode, got, wantQueues[i])
		}
	}
	resp, again := do(t, s, "POST", batchPath, devToken, body)
	if resp.StatusCode != 200 || fmt.Sprint(batchIDs(t, again)) != fmt.Sprint(ids) {
		t.Fatalf("the batch again: %d %v, want 200 with ids %v", resp.StatusCode, again, ids)
	}
	for i, j := range again["jobs"].([]any) {
		if j.(map[string]any)["replayed"] != true {
			t.Errorf("job %d again: %v, want replayed true", i, j)
		}
	}
	if got := devJobIDs(t, s); len(got) != 3 {
		t.Errorf("jobs %v, want the batch's 3", got)
	}
}

// TestEnqueueBatchRefusals: on the memory backend and on Redis, each
// refusal is 400 with the single enqueue's JSON error, naming the bad job
// as jobs[i], and stores nothing of the batch; a key reused with another
// payload is the single enqueue's 422 naming the job; the Idempotency-Key
// header is refused.
func TestEnqueueBatchRefusals(t *testing.T) {
	batchServers(t, "ebr:", testEnqueueBatchRefusals)
}

func testEnqueueBatchRefusals(t *testing.T, s *Server) {
	ping := `{"type":"ping"}`
	many := func(n int) string { return `{"jobs":[` + strings.Repeat(ping+",", n-1) + ping + `]}` }
	for _, c := range []struct {
		name, body string
		status     int
		msg        string
	}{
		{"unknown field in job 2", `{"jobs":[` + ping + `,` + ping + `,{"type":"ping","priority":1}]}`, 400, `jobs[2]: unknown field "priority"`},
		{"bad queue in job 0", `{"jobs":[{"type":"ping","queue":"a b"},` + ping + `]}`, 400, "jobs[0]: "},
		{"empty queue in job 1", `{"jobs":[` + ping + `,{"type":"ping","queue":""}]}`, 400, `jobs[1]: queue ""`},
		{"wrong type in job 3", `{"jobs":[` + ping + `,` + ping + `,` + ping + `,{"type":"ping","queue":7}]}`, 400, `jobs[3]: field "queue" must be a string`},
		{"duplicate field in job 1", `{"jobs":[` + ping + `,{"type":"ping","type":"echo"}]}`, 400, "jobs[1]: "},
		{"job not an object", `{"jobs":[` + ping + `,5]}`, 400, "jobs[1]: the job must be a JSON object"},
		{"unknown type in job 1", `{"jobs":[` + ping + `,{"type":"nope"}]}`, 400, "jobs[1]: "},
		{"same key twice in one queue", `{"jobs":[{"type":"ping","idempotency_key":"k"},{"type":"echo","idempotency_key":"k"}]}`, 400, "jobs 0 and 1 have the same idempotency key"},
		{"empty jobs", `{"jobs":[]}`, 400, "1 to 1000"},
		{"no jobs", `{}`, 400, "1 to 1000"},
		{"over the bound", many(1001), 400, "holds 1001 jobs: a batch holds 1 to 1000"},
		{"body not an object", `[` + ping + `]`, 400, "must be a JSON object"},
		{"jobs not an array", `{"jobs":` + ping + `}`, 400, `field "jobs" must be an array`},
		{"unknown top-level field", `{"jobs":[` + ping + `],"queue":"a"}`, 400, `unknown field "queue"`},
	} {
		resp, body := do(t, s, "POST", batchPath, devToken, c.body)
		if resp.StatusCode != c.status || errCode(body) != "invalid" || !strings.Contains(errMessage(body), c.msg) {
			t.Errorf("%s: %d %v, want %d invalid saying %q", c.name, resp.StatusCode, body, c.status, c.msg)
		}
	}
	if resp, body := doKey(t, s, "POST", batchPath, devToken, many(1), "k"); resp.StatusCode != 400 || !strings.Contains(errMessage(body), "Idempotency-Key header") {
		t.Errorf("with the Idempotency-Key header: %d %v, want 400 naming it", resp.StatusCode, body)
	}
	if ids := devJobIDs(t, s); len(ids) != 0 {
		t.Errorf("jobs %v after refusals, want none", ids)
	}
	if resp, body := do(t, s, "POST", batchPath, devToken, many(1000)); resp.StatusCode != 202 || len(batchIDs(t, body)) != 1000 {
		t.Errorf("1000 jobs: %d, %d ids, want 202 and 1000", resp.StatusCode, len(batchIDs(t, body)))
	}

	resp, single := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping","queue":"k","idempotency_key":"used"}`)
	if resp.StatusCode != 202 {
		t.Fatalf("single enqueue: %d %v", resp.StatusCode, single)
	}
	id := str(single, "id")
	resp, body := do(t, s, "POST", batchPath, devToken, `{"jobs":[{"type":"ping","queue":"k"},{"type":"echo","queue":"k","idempotency_key":"used"}]}`)
	if resp.StatusCode != 422 || errCode(body) != "idempotency_key_reused" || !strings.HasPrefix(errMessage(body), "jobs[1]: ") ||
		!strings.Contains(errMessage(body), id) || str(errDetails(body), "job_id") != id {
		t.Errorf("a key reused with another payload: %d %v, want 422 idempotency_key_reused naming jobs[1] and %s", resp.StatusCode, body, id)
	}
	if resp, body := do(t, s, "GET", "/api/dev/jobs?queue=k", devToken, ""); resp.StatusCode != 200 || len(body["jobs"].([]any)) != 1 {
		t.Errorf("queue k after the refused key: %d %v, want the single enqueue's job alone", resp.StatusCode, body)
	}
}

// TestEnqueueBatchPartialFailure: on Redis a batch is atomic per queue, not
// as a whole. With queue b's keys broken (a key of the wrong type), a batch
// of jobs in a, then b, stores a's jobs; b's script fails running (WRONGTYPE
// after its job's hash was written), so b's job may have been stored: the
// 503 says so, its details name each job as stored or maybe stored, and a
// GET of each stored one agrees. A key refused in one queue (before its
// script wrote anything) while another's jobs are stored is not stored.
func TestEnqueueBatchPartialFailure(t *testing.T) {
	r := redistest.Start(t)
	s, rdb := newRedisServer(t, r, noLimits, func(c *config.Config) { c.Prefix = "bpf:" })
	if err := rdb.Set(context.Background(), "bpf:q:{b}:pending", "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, s, "POST", batchPath, devToken, `{"jobs":[{"type":"ping","queue":"a"},{"type":"ping","queue":"b"},{"type":"ping","queue":"a"}]}`)
	d := errDetails(body)
	if resp.StatusCode != 503 || errCode(body) != "unavailable" || !strings.Contains(errMessage(body), "2 are stored, 0 are not and 1 may have been") {
		t.Fatalf("batch with queue b broken: %d %v, want 503 saying 2 stored, 1 maybe", resp.StatusCode, body)
	}
	list := func(k string) (idx []int, ids []string) {
		js, _ := d[k].([]any)
		for _, j := range js {
			m := j.(map[string]any)
			idx = append(idx, int(m["index"].(float64)))
			ids = append(ids, str(m, "id"))
		}
		return idx, ids
	}
	storedIdx, stored := list("stored")
	notIdx, _ := list("not_stored")
	maybeIdx, _ := list("maybe_stored")
	if fmt.Sprint(storedIdx, notIdx, maybeIdx) != "[0 2] [] [1]" {
		t.Fatalf("details %v: stored %v, not stored %v, maybe %v; want [0 2] [] [1]", d, storedIdx, notIdx, maybeIdx)
	}
	for _, id := range stored {
		if resp, got := do(t, s, "GET", "/run/"+id, "", ""); resp.StatusCode != 200 || str(got, "queue") != "a" {
			t.Errorf("GET stored %s: %d %v, want it in queue a", id, resp.StatusCode, got)
		}
	}

	// A key refused in one queue (its script stores nothing) while another
	// queue's jobs are stored: the single enqueue's 422 for that job, and
	// the details say what is stored.
	resp, single := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping","queue":"c","idempotency_key":"used"}`)
	if resp.StatusCode != 202 {
		t.Fatalf("single enqueue: %d %v", resp.StatusCode, single)
	}
	resp, body = do(t, s, "POST", batchPath, devToken, `{"jobs":[{"type":"ping","queue":"a"},{"type":"echo","queue":"c","idempotency_key":"used"}]}`)
	d = errDetails(body)
	storedIdx, stored = list("stored")
	notIdx, notStored := list("not_stored")
	if resp.StatusCode != 422 || errCode(body) != "idempotency_key_reused" || !strings.HasPrefix(errMessage(body), "jobs[1]: ") ||
		str(d, "job_id") != str(single, "id") || fmt.Sprint(storedIdx, notIdx) != "[0] [1]" {
		t.Fatalf("a key reused in queue c beside a job of a: %d %v, want 422 naming jobs[1] and %s, job 0 stored, 1 not", resp.StatusCode, body, str(single, "id"))
	}
	if resp, got := do(t, s, "GET", "/run/"+stored[0], "", ""); resp.StatusCode != 200 {
		t.Errorf("GET stored %s: %d %v, want 200", stored[0], resp.StatusCode, got)
	}
	for _, id := range notStored {
		if resp, got := do(t, s, "GET", "/run/"+id, "", ""); resp.StatusCode != 404 {
			t.Errorf("GET not stored %s: %d %v, want 404", id, resp.StatusCode, got)
		}
	}
}
