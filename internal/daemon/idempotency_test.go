package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/redistest"
)

// doKey is do with the Idempotency-Key header given keys (each a header
// line; none when keys is empty).
func doKey(t *testing.T, h http.Handler, method, path, token, body string, keys ...string) (*http.Response, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, k := range keys {
		req.Header.Add("Idempotency-Key", k)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Result(), out
}

func errDetails(body map[string]any) map[string]any {
	e, _ := body["error"].(map[string]any)
	d, _ := e["details"].(map[string]any)
	return d
}

func noLimits(c *config.Config) { c.RateLimitEnabled = false }

// TestIdempotencyKeyRoutes: on the memory backend and on Redis, POST /run,
// the developer enqueue and /assistant take an Idempotency-Key header (or
// the body's idempotency_key): the first request stores its job (202), the
// same request again stores nothing and answers that job (200,
// Idempotent-Replayed: true, the same JSON shape); the key with another
// request is 422 idempotency_key_reused, naming the job only on the
// developer route (the operators' keys, apart from the public callers'); a bad key, the
// header and the field differing, the header twice are 400; each error has
// the JSON error body, and nothing refused is stored.
func TestIdempotencyKeyRoutes(t *testing.T) {
	r := redistest.Start(t)
	for _, be := range []string{"memory", "redis"} {
		t.Run(be, func(t *testing.T) {
			s := newTestServer(t, noLimits)
			if be == "redis" {
				s, _ = newRedisServer(t, r, noLimits, func(c *config.Config) { c.Prefix = "idr:" })
			}
			const job = `{"type":"echo","payload":{"n":1},"queue":"orders"}`
			resp, first := doKey(t, s, "POST", "/run", "", job, "order-1")
			if resp.StatusCode != 202 || resp.Header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("first /run: %d %v (replayed %q), want 202", resp.StatusCode, first, resp.Header.Get("Idempotent-Replayed"))
			}
			id := str(first, "id")
			for _, c := range []struct {
				name, path, token, body string
				keys                    []string
			}{
				{"header again", "/run", "", job, []string{"order-1"}},
				{"field", "/run", "", `{"type":"echo","payload":{"n":1},"queue":"orders","idempotency_key":"order-1"}`, nil},
				{"header and the same field", "/run", "", `{"type":"echo","payload":{"n":1},"queue":"orders","idempotency_key":"order-1"}`, []string{"order-1"}},
			} {
				resp, body := doKey(t, s, "POST", c.path, c.token, c.body, c.keys...)
				if resp.StatusCode != 200 || resp.Header.Get("Idempotent-Replayed") != "true" || str(body, "id") != id ||
					str(body, "status") != "pending" || str(body, "type") != "echo" {
					t.Errorf("%s: %d %v (Idempotent-Replayed %q), want 200 replayed job %s", c.name, resp.StatusCode, body, resp.Header.Get("Idempotent-Replayed"), id)
				}
				if len(body) != len(first) {
					t.Errorf("%s: fields %v, want the first answer's %v", c.name, body, first)
				}
			}

			resp, body := doKey(t, s, "POST", "/run", "", `{"type":"echo","payload":{"n":2},"queue":"orders"}`, "order-1")
			if resp.StatusCode != 422 || errCode(body) != "idempotency_key_reused" || !strings.Contains(errMessage(body), `"order-1"`) ||
				strings.Contains(errMessage(body), id) || errDetails(body) != nil {
				t.Errorf("the key with another payload: %d %v, want 422 idempotency_key_reused, the key's job not named (a public route)", resp.StatusCode, body)
			}
			// The operators' keys (the developer enqueue, the CLI) are
			// apart from the public callers': the same key makes a job of
			// their own, replayed as any, and their refusals name the job.
			resp, dev := doKey(t, s, "POST", "/api/dev/jobs/enqueue", devToken, job, "order-1")
			devID := str(dev, "id")
			if resp.StatusCode != 202 || devID == id {
				t.Errorf("developer enqueue with a public caller's key: %d %v, want 202 and a job of its own", resp.StatusCode, dev)
			}
			if resp, body := doKey(t, s, "POST", "/api/dev/jobs/enqueue", devToken, job, "order-1"); resp.StatusCode != 200 || str(body, "id") != devID {
				t.Errorf("developer enqueue again: %d %v, want 200 replaying %s", resp.StatusCode, body, devID)
			}
			resp, body = doKey(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"echo","payload":{"n":2},"queue":"orders"}`, "order-1")
			if resp.StatusCode != 422 || !strings.Contains(errMessage(body), devID) || str(errDetails(body), "job_id") != devID {
				t.Errorf("developer enqueue, the key with another payload: %d %v, want 422 naming %s", resp.StatusCode, body, devID)
			}
			resp, body = doKey(t, s, "POST", "/run", "", `{"type":"echo","payload":{"n":1}}`, "order-1")
			if resp.StatusCode != 202 {
				t.Errorf("the key in another queue: %d %v, want 202", resp.StatusCode, body)
			}

			for _, c := range []struct {
				name, path, body string
				keys             []string
				msg              string
			}{
				{"a space", "/run", job, []string{"order 2"}, "visible ASCII"},
				{"256 bytes", "/run", job, []string{strings.Repeat("k", 256)}, "256 bytes"},
				{"empty header", "/run", job, []string{""}, "header is empty"},
				{"field not ASCII", "/run", `{"type":"ping","idempotency_key":"ordér"}`, nil, "visible ASCII"},
				{"header and field differ", "/run", `{"type":"ping","idempotency_key":"a"}`, []string{"b"}, "differ"},
				{"header twice", "/run", job, []string{"a", "b"}, "2 times"},
				{"assistant: header and field differ", "/assistant", `{"type":"ping","idempotency_key":"a","timeout_ms":1}`, []string{"b"}, "differ"},
				{"developer enqueue: bad key", "/api/dev/jobs/enqueue", job, []string{"tab\tkey"}, "visible ASCII"},
			} {
				token := ""
				if strings.HasPrefix(c.path, "/api/dev") {
					token = devToken
				}
				resp, body := doKey(t, s, "POST", c.path, token, c.body, c.keys...)
				if resp.StatusCode != 400 || errCode(body) != "invalid" || !strings.Contains(errMessage(body), c.msg) {
					t.Errorf("%s: %d %v, want 400 invalid saying %q", c.name, resp.StatusCode, body, c.msg)
				}
			}
			if ids := devJobIDs(t, s); len(ids) != 3 {
				t.Errorf("jobs %v, want the first, the developer's and the other queue's", ids)
			}
		})
	}
}

// TestIdempotencyKeyJobGone: a key whose job is no longer kept (trimmed
// from the history by JOB_HISTORY) answers 409 conflict saying so (on the
// public route without the job), and stores nothing; a new key stores.
func TestIdempotencyKeyJobGone(t *testing.T) {
	s := newTestServer(t, noLimits, func(c *config.Config) { c.JobHistory = 1 })
	const job = `{"type":"ping","queue":"trim"}`
	resp, body := doKey(t, s, "POST", "/run", "", job, "k")
	if resp.StatusCode != 202 {
		t.Fatalf("first: %d %v", resp.StatusCode, body)
	}
	id := str(body, "id")
	for range 2 { // the keyed job, then one that trims it
		if resp, body := do(t, s, "POST", "/api/dev/jobs/run-next?queue=trim", devToken, ""); resp.StatusCode != 200 {
			t.Fatalf("run-next: %d %v", resp.StatusCode, body)
		}
		do(t, s, "POST", "/run", "", job)
	}
	before := len(devJobIDs(t, s))
	resp, body = doKey(t, s, "POST", "/run", "", job, "k")
	if resp.StatusCode != 409 || errCode(body) != "conflict" || !strings.Contains(errMessage(body), "no longer kept") ||
		!strings.Contains(errMessage(body), "new key") || strings.Contains(errMessage(body), id) || errDetails(body) != nil {
		t.Errorf("the key of a trimmed job: %d %v, want 409 conflict, no longer kept, the job not named (a public route)", resp.StatusCode, body)
	}
	if after := len(devJobIDs(t, s)); after != before {
		t.Errorf("%d jobs after the refusal, %d before", after, before)
	}
	if resp, body := doKey(t, s, "POST", "/run", "", job, "k2"); resp.StatusCode != 202 {
		t.Errorf("a new key: %d %v, want 202", resp.StatusCode, body)
	}
}

// TestIdempotencyKeyAssistantReplayWaits: a client whose /assistant wait
// ran out (504) sends the same request again and waits again, for the
// same job (nothing new stored), and gets its result: 200 with
// Idempotent-Replayed, once the job has run.
func TestIdempotencyKeyAssistantReplayWaits(t *testing.T) {
	s := newTestServer(t, noLimits) // manual mode: the job runs when the test says
	resp, body := doKey(t, s, "POST", "/assistant", "", `{"type":"echo","payload":"hi","timeout_ms":20}`, "ask-1")
	if resp.StatusCode != 504 || resp.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first /assistant: %d %v, want 504", resp.StatusCode, body)
	}
	id := str(errDetails(body), "job_id")
	type answer struct {
		resp *http.Response
		body map[string]any
	}
	got := make(chan answer, 1)
	go func() {
		resp, body := doKey(t, s, "POST", "/assistant", "", `{"type":"echo","payload":"hi","timeout_ms":20000}`, "ask-1")
		got <- answer{resp, body}
	}()
	// The replay waits: the job is pending until run here.
	select {
	case a := <-got:
		t.Fatalf("the replay answered before its job ran: %d %v", a.resp.StatusCode, a.body)
	case <-time.After(200 * time.Millisecond):
	}
	if resp, body := do(t, s, "POST", "/api/dev/jobs/"+id+"/run", devToken, ""); resp.StatusCode != 200 {
		t.Fatalf("run: %d %v", resp.StatusCode, body)
	}
	a := <-got
	if a.resp.StatusCode != 200 || a.resp.Header.Get("Idempotent-Replayed") != "true" || str(a.body, "id") != id ||
		str(a.body, "status") != "succeeded" || a.body["result"] != "hi" {
		t.Errorf("replay: %d %v (Idempotent-Replayed %q), want 200 with job %s's result", a.resp.StatusCode, a.body, a.resp.Header.Get("Idempotent-Replayed"), id)
	}
	if ids := devJobIDs(t, s); len(ids) != 1 {
		t.Errorf("jobs %v, want only %s", ids, id)
	}
}

// TestIdempotencyKeyScopedToCaller: on the public routes a key is the
// caller's: two clients (by address, or by the user a trusted proxy names)
// sending one key each get a job of their own, never the other's (which
// would hand them its id, the permission to read it) nor a refusal naming
// it; each one's retry replays its own.
func TestIdempotencyKeyScopedToCaller(t *testing.T) {
	s := newTestServer(t, noLimits, func(c *config.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	send := func(addr, user, body string) (*http.Response, map[string]any) {
		t.Helper()
		req := httptest.NewRequest("POST", "/run", strings.NewReader(body))
		req.RemoteAddr = addr
		req.Header.Set("Idempotency-Key", "order-1")
		if user != "" {
			req.Header.Set("X-User-ID", user)
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		var out map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		return rec.Result(), out
	}
	const victim = `{"type":"echo","payload":{"card":"4111"}}`
	resp, v := send("192.0.2.1:1000", "", victim)
	if resp.StatusCode != 202 {
		t.Fatalf("the first client: %d %v", resp.StatusCode, v)
	}
	for _, c := range []struct{ name, addr, user, body string }{
		{"another address, the same request", "192.0.2.2:1000", "", victim},
		{"another address, another request", "192.0.2.3:1000", "", `{"type":"ping"}`},
		{"a user behind a trusted proxy", "10.0.0.1:1000", "alice", victim},
	} {
		resp, body := send(c.addr, c.user, c.body)
		if resp.StatusCode != 202 || str(body, "id") == str(v, "id") || strings.Contains(fmt.Sprint(body), str(v, "id")) {
			t.Errorf("%s: %d %v, want 202 and a job of its own", c.name, resp.StatusCode, body)
		}
	}
	if resp, body := send("192.0.2.1:2000", "", victim); resp.StatusCode != 200 || str(body, "id") != str(v, "id") {
		t.Errorf("the first client again (another port): %d %v, want 200 replaying %s", resp.StatusCode, body, str(v, "id"))
	}
	// /assistant's keys are the caller's too: another address's request
	// with the same key and body waits on a job of its own (here, with no
	// worker, a 504 naming it), never the first caller's.
	const ask = `{"type":"echo","payload":{"q":"secret"},"timeout_ms":1}`
	var asked []string
	for _, addr := range []string{"192.0.2.1:1000", "192.0.2.2:1000"} {
		req := httptest.NewRequest("POST", "/assistant", strings.NewReader(ask))
		req.RemoteAddr = addr
		req.Header.Set("Idempotency-Key", "ask-1")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		var out map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		asked = append(asked, str(errDetails(out), "job_id"))
		if rec.Code != http.StatusGatewayTimeout || asked[len(asked)-1] == "" {
			t.Fatalf("/assistant from %s: %d %v, want 504 with its job", addr, rec.Code, out)
		}
	}
	if asked[0] == asked[1] {
		t.Errorf("/assistant: two addresses with one key share job %s, want one each", asked[0])
	}
	// One user's key follows the user, whatever proxy address it comes by.
	_, a := send("10.0.0.1:1000", "bob", victim)
	if resp, body := send("10.0.0.2:1000", "bob", victim); resp.StatusCode != 200 || str(body, "id") != str(a, "id") {
		t.Errorf("bob through another proxy: %d %v, want 200 replaying %s", resp.StatusCode, body, str(a, "id"))
	}
}

// TestIdempotencyTTLSetting: JOB_IDEMPOTENCY_TTL reaches the queue: past
// it, the same request with the same key makes a new job.
func TestIdempotencyTTLSetting(t *testing.T) {
	s := newTestServer(t, noLimits, func(c *config.Config) { c.JobIdempotencyTTL = time.Second })
	const job = `{"type":"ping","queue":"ttl"}`
	resp, first := doKey(t, s, "POST", "/run", "", job, "k")
	if resp.StatusCode != 202 {
		t.Fatalf("first: %d %v", resp.StatusCode, first)
	}
	if resp, body := doKey(t, s, "POST", "/run", "", job, "k"); resp.StatusCode != 200 || str(body, "id") != str(first, "id") {
		t.Fatalf("within the TTL: %d %v, want 200 replaying %s", resp.StatusCode, body, str(first, "id"))
	}
	time.Sleep(1100 * time.Millisecond) // past JOB_IDEMPOTENCY_TTL
	if resp, body := doKey(t, s, "POST", "/run", "", job, "k"); resp.StatusCode != 202 || str(body, "id") == str(first, "id") {
		t.Errorf("past JOB_IDEMPOTENCY_TTL (1s): %d %v, want 202 and a new job", resp.StatusCode, body)
	}
}
