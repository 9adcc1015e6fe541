package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/redistest"
)

// makeDeadJobs makes n fail jobs of queue q dead through the API (manual
// mode: run-next runs each) and returns their ids in the order they died,
// each in a millisecond of its own (jobs that die in the same millisecond
// are taken in id order), once the clock has left the last one's
// millisecond (the default cut of requeue-dead is the millisecond before
// the call).
func makeDeadJobs(t *testing.T, s *Server, q string, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		for last := time.Now().UnixMilli(); time.Now().UnixMilli() <= last; {
			time.Sleep(100 * time.Microsecond)
		}
		resp, j := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"fail","queue":"`+q+`","max_retries":0}`)
		if resp.StatusCode != 202 {
			t.Fatalf("enqueue: %d %v", resp.StatusCode, j)
		}
		if resp, r := do(t, s, "POST", "/api/dev/jobs/run-next?queue="+q, devToken, ""); resp.StatusCode != 200 || str(r, "status") != "dead" {
			t.Fatalf("run-next: %d %v, want the job dead", resp.StatusCode, r)
		}
		ids = append(ids, str(j, "id"))
	}
	for last := time.Now().UnixMilli(); time.Now().UnixMilli() <= last+1; {
		time.Sleep(time.Millisecond)
	}
	return ids
}

// TestRequeueDeadRoute: POST /api/dev/queues/requeue-dead?queue=Q moves
// the queue's dead jobs back to pending, oldest death first, up to
// ?limit=, and answers them with how many are left and the cut it used,
// which ?before= takes back to go on; an unknown queue is a 404, a queue
// with no dead job a 200 moving nothing, bad input a 400, and the route
// wants the developer token.
func TestRequeueDeadRoute(t *testing.T) {
	s := newTestServer(t) // manual mode
	dead := makeDeadJobs(t, s, "mail", 3)
	other := makeDeadJobs(t, s, "other", 1)

	resp, body := do(t, s, "POST", "/api/dev/queues/requeue-dead?queue=mail&limit=2", devToken, "")
	if resp.StatusCode != 200 {
		t.Fatalf("requeue-dead: %d %v", resp.StatusCode, body)
	}
	before := int64(num(body, "before"))
	if d := cmp.Diff(map[string]any{"queue": "mail", "requeued": 2.0, "ids": []any{dead[0], dead[1]}, "remaining": 1.0, "before": float64(before)}, body); d != "" {
		t.Errorf("first answer (-want +got):\n%s", d)
	}
	if now := time.Now().UnixMilli(); before >= now || before < now-60_000 {
		t.Errorf("before %d: want the millisecond before the call (now %d)", before, now)
	}
	b := strconv.FormatInt(before, 10)
	_, body = do(t, s, "POST", "/api/dev/queues/requeue-dead?queue=mail&before="+b, devToken, "")
	if d := cmp.Diff(map[string]any{"queue": "mail", "requeued": 1.0, "ids": []any{dead[2]}, "remaining": 0.0, "before": float64(before)}, body); d != "" {
		t.Errorf("second answer, before passed back (-want +got):\n%s", d)
	}
	_, body = do(t, s, "POST", "/api/dev/queues/requeue-dead?queue=mail", devToken, "")
	if num(body, "requeued") != 0 || fmt.Sprint(body["ids"]) != "[]" || num(body, "remaining") != 0 {
		t.Errorf("a queue with no dead job left: %v, want 0 requeued, ids []", body)
	}
	_, list := do(t, s, "GET", "/api/dev/jobs?queue=mail&status=pending", devToken, "")
	var pending []string
	for _, j := range list["jobs"].([]any) {
		pending = append(pending, str(j.(map[string]any), "id"))
	}
	if d := cmp.Diff(dead, pending); d != "" {
		t.Errorf("pending jobs of mail, in line (-want +got):\n%s", d)
	}
	if _, j := do(t, s, "GET", "/run/"+other[0], "", ""); str(j, "status") != "dead" {
		t.Errorf("the other queue's dead job: %v, want still dead", j)
	}

	for _, tt := range []struct {
		name, method, path, token, body string
		code                            int
		err                             string
	}{
		{"unknown queue", "POST", "/api/dev/queues/requeue-dead?queue=nope", devToken, "", 404, "not_found"},
		{"no queue", "POST", "/api/dev/queues/requeue-dead", devToken, "", 400, "invalid"},
		{"empty queue", "POST", "/api/dev/queues/requeue-dead?queue=", devToken, "", 400, "invalid"},
		{"bad queue name", "POST", "/api/dev/queues/requeue-dead?queue=a%20b", devToken, "", 400, "invalid"},
		{"limit 0", "POST", "/api/dev/queues/requeue-dead?queue=mail&limit=0", devToken, "", 400, "invalid"},
		{"limit too high", "POST", "/api/dev/queues/requeue-dead?queue=mail&limit=10001", devToken, "", 400, "invalid"},
		{"limit not a number", "POST", "/api/dev/queues/requeue-dead?queue=mail&limit=x", devToken, "", 400, "invalid"},
		{"before negative", "POST", "/api/dev/queues/requeue-dead?queue=mail&before=-1", devToken, "", 400, "invalid"},
		{"before signed", "POST", "/api/dev/queues/requeue-dead?queue=mail&before=%2B5", devToken, "", 400, "invalid"},
		{"before not a number", "POST", "/api/dev/queues/requeue-dead?queue=mail&before=soon", devToken, "", 400, "invalid"},
		{"before empty", "POST", "/api/dev/queues/requeue-dead?queue=mail&before=", devToken, "", 400, "invalid"},
		{"repeated queue", "POST", "/api/dev/queues/requeue-dead?queue=mail&queue=other", devToken, "", 400, "invalid"},
		{"repeated limit", "POST", "/api/dev/queues/requeue-dead?queue=mail&limit=1&limit=2", devToken, "", 400, "invalid"},
		{"unknown parameter", "POST", "/api/dev/queues/requeue-dead?queue=mail&all=1", devToken, "", 400, "invalid"},
		{"a body", "POST", "/api/dev/queues/requeue-dead?queue=mail", devToken, `{"queue":"mail"}`, 400, "invalid"},
		{"no token", "POST", "/api/dev/queues/requeue-dead?queue=mail", "", "", 401, "unauthorized"},
		{"operator token", "POST", "/api/dev/queues/requeue-dead?queue=mail", opToken, "", 403, "forbidden"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if resp, body := do(t, s, tt.method, tt.path, tt.token, tt.body); resp.StatusCode != tt.code || errCode(body) != tt.err {
				t.Errorf("%s %s: %d %v, want %d %s", tt.method, tt.path, resp.StatusCode, body, tt.code, tt.err)
			}
		})
	}
	if resp, body := do(t, s, "POST", "/api/dev/queues/requeue-dead?queue=other&limit=10000&before=0", devToken, ""); resp.StatusCode != 200 || num(body, "requeued") != 0 || num(body, "remaining") != 0 {
		t.Errorf("before=0 (nothing died that early): %d %v", resp.StatusCode, body)
	}
}

// failNthScript is a go-redis hook that fails the nth EVALSHA (or EVAL)
// whose keys include a queue's dead set and its stats, requeue-dead's
// script, as a backend failing part way would.
type failNthScript struct {
	n     int
	calls atomic.Int64
}

func (h *failNthScript) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *failNthScript) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			args := fmt.Sprint(cmd.Args())
			if strings.Contains(args, "}:dead ") && strings.Contains(args, "}:stats ") && h.calls.Add(1) == int64(h.n) {
				err := errors.New("injected: connection reset")
				cmd.SetErr(err)
				return err
			}
		}
		return next(ctx, cmd)
	}
}

func (h *failNthScript) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestRequeueDeadPartialFailureNamesTheMoved: when Redis fails after some
// of a request's script calls moved jobs (500 a call), the error answer
// names those jobs (details: requeued, ids, before), so the caller knows
// what is back in line; a second request moves the rest.
func TestRequeueDeadPartialFailureNamesTheMoved(t *testing.T) {
	r := redistest.Start(t)
	s, client := newRedisServer(t, r, func(c *config.Config) { c.JobHistory = 1000 })
	dead := makeDeadJobs(t, s, "bulk", 501)
	client.AddHook(&failNthScript{n: 2})

	resp, body := do(t, s, "POST", "/api/dev/queues/requeue-dead?queue=bulk&limit=1000", devToken, "")
	if resp.StatusCode != 503 || errCode(body) != "unavailable" {
		t.Fatalf("a failure part way: %d %v, want 503 unavailable", resp.StatusCode, body)
	}
	details, _ := body["error"].(map[string]any)["details"].(map[string]any)
	var ids []string
	if list, ok := details["ids"].([]any); ok {
		for _, id := range list {
			ids = append(ids, id.(string))
		}
	}
	if num(details, "requeued") != 500 || !slices.Equal(ids, dead[:500]) || num(details, "before") <= 0 {
		t.Errorf("details: requeued %v, before %v, ids %d (want the first 500 dead, in order)", details["requeued"], details["before"], len(ids))
	}
	_, body = do(t, s, "POST", "/api/dev/queues/requeue-dead?queue=bulk&before="+strconv.Itoa(num(details, "before")), devToken, "")
	if num(body, "requeued") != 1 || fmt.Sprint(body["ids"]) != fmt.Sprint([]string{dead[500]}) || num(body, "remaining") != 0 {
		t.Errorf("the second request: %v, want the last dead job", body)
	}
}
