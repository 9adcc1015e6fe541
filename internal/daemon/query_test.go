package daemon

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestQueryParsedStrictly: every route that reads its query refuses, with a
// 400 naming the problem, a query that does not parse (bad percent-encoding,
// a ';'), a name it does not take, and a name given twice, where
// r.URL.Query() dropped or ignored them and the route did something else
// than asked (ran a job of another queue, listed everything, recorded the
// wrong source). The identity parameters pass on every route.
func TestQueryParsedStrictly(t *testing.T) {
	s := newTestServer(t)
	// A pending job in queue default: a run-next that lost its ?queue= runs it.
	if resp, body := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping"}`); resp.StatusCode != 202 {
		t.Fatalf("enqueue: %d %v", resp.StatusCode, body)
	}
	tests := []struct {
		name, method, path, body string
		status                   int
		message                  string // a part of the error's message
	}{
		{"run-next, ';' in the query", "POST", "/api/dev/jobs/run-next?queue=empty;x", "", 400, "';'"},
		{"list, bad percent-encoding", "GET", "/api/dev/jobs?queue=nosuch%ZZ", "", 400, "percent-encoding"},
		{"list, repeated limit", "GET", "/api/dev/jobs?limit=1&limit=2", "", 400, `"limit" is given more than once`},
		{"list, unknown name", "GET", "/api/dev/jobs?queues=default", "", 400, `unknown query parameter "queues": GET /api/dev/jobs takes queue, status, limit`},
		{"list, bad name encoding", "GET", "/api/dev/jobs?q%ZZ=1", "", 400, "percent-encoding"},
		{"enqueue, bad source encoding", "POST", "/api/dev/jobs/enqueue?source=cli%ZZ", `{"type":"ping"}`, 400, "percent-encoding"},
		{"remove queue, bad encoding", "DELETE", "/api/dev/queues?queue=x%ZZ", "", 400, "percent-encoding"},
		{"remove queue, repeated", "DELETE", "/api/dev/queues?queue=a&queue=b", "", 400, "more than once"},
		{"tenant-meta, repeated tenant", "GET", "/api/public/tenant-meta?tenant=a&tenant=b", "", 400, "more than once"},
		{"limits config get, bad encoding", "GET", "/api/dev/rate-limits/config?target=run%ZZ", "", 400, "percent-encoding"},
		{"limits config delete, unknown name", "DELETE", "/api/dev/rate-limits/config?target=run&force=1", "", 400, `unknown query parameter "force"`},
		{"rate-limits snapshot, ';'", "GET", "/api/obs/rate-limits?limit=5;x", "", 400, "';'"},
		// What passes.
		{"list, every name", "GET", "/api/dev/jobs?queue=default&status=pending&limit=5", "", 200, ""},
		{"list, identity names", "GET", "/api/dev/jobs?user_id=u1&tenant=t1", "", 200, ""},
		{"list, encoded value", "GET", "/api/dev/jobs?queue=de%66ault", "", 200, ""},
		{"rate-limits snapshot, identity names", "GET", "/api/obs/rate-limits?limit=5&user_id=u1", "", 200, ""},
		{"tenant-meta", "GET", "/api/public/tenant-meta?tenant=acme&user_id=u1", "", 200, ""},
		{"run-next, no query, the job in default", "POST", "/api/dev/jobs/run-next", "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, s, tt.method, tt.path, devToken, tt.body)
			wantAnswer(t, tt.method+" "+tt.path, resp, body, tt.status, tt.message)
		})
	}
}

// TestIdentityQueryParsedStrictly: behind a trusted proxy, identity read
// from a query that does not parse is a 400, not an identity quietly absent
// (the request then limited by IP alone, or refused for a missing user).
func TestIdentityQueryParsedStrictly(t *testing.T) {
	s, _ := newLimitServer(t)
	const proxy = "127.0.0.1:4711"
	tests := []struct {
		name, method, path, body string
		status                   int
		message                  string
	}{
		{"run, bad user_id", "POST", "/run?user_id=u%ZZ", `{"type":"ping"}`, 400, "percent-encoding"},
		{"run, ';'", "POST", "/run?user_id=u1;x", `{"type":"ping"}`, 400, "';'"},
		{"run, repeated user_id", "POST", "/run?user_id=a&user_id=b", `{"type":"ping"}`, 400, "more than once"},
		{"secure-ping, bad tenant", "GET", "/api/secure/ping?user_id=u1&tenant=t%ZZ", "", 400, "percent-encoding"},
		{"secure-ping from the query", "GET", "/api/secure/ping?user_id=u1&tenant=t1", "", 200, ""},
		{"run with identity", "POST", "/run?user_id=u1", `{"type":"ping"}`, 202, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := send(t, s, request{method: tt.method, path: tt.path, body: tt.body, peer: proxy})
			wantAnswer(t, tt.method+" "+tt.path, resp, body, tt.status, tt.message)
		})
	}
}

// wantAnswer checks that the answer to what has status and, in its error's
// message, message ("" for any).
func wantAnswer(t *testing.T, what string, resp *http.Response, body map[string]any, status int, message string) {
	t.Helper()
	msg := errMessage(body)
	type answer struct {
		Status  int
		Message bool
	}
	got, want := answer{resp.StatusCode, strings.Contains(msg, message)}, answer{status, true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s\nbody: %v", what, diff, body)
	}
}

// TestIdentityRoutesQueryStrict: the routes whose query holds identity
// alone (POST /run, POST /assistant, GET /api/secure/ping, GET
// /api/dev/rl-test) parse it as strictly as the others, from any peer: an
// unknown name, a name given twice or bad encoding is a 400 naming it. They
// answered 200 or 202: the query was read only from a trusted source, and
// only for user_id and tenant.
func TestIdentityRoutesQueryStrict(t *testing.T) {
	s, _ := newLimitServer(t)
	const client = "203.0.113.9:5000"
	job := `{"type":"ping"}`
	tests := []struct {
		name          string
		rq            request
		status        int
		code, message string
	}{
		{"secure-ping, unknown and repeated", request{path: "/api/secure/ping?user_id=q&tenant=t&x=1&x=2", peer: client}, 400, "invalid",
			`unknown query parameter "x": GET /api/secure/ping takes only user_id, tenant (from a trusted proxy)`},
		{"run, unknown", request{method: "POST", path: "/run?x=1", body: job, peer: client}, 400, "invalid",
			`unknown query parameter "x": POST /run takes only user_id, tenant (from a trusted proxy)`},
		{"assistant, unknown", request{method: "POST", path: "/assistant?x=1", body: job, peer: client}, 400, "invalid",
			`unknown query parameter "x": POST /assistant takes only user_id, tenant (from a trusted proxy)`},
		{"rl-test, unknown", request{path: "/api/dev/rl-test?x=1", token: devToken, peer: client}, 400, "invalid",
			`unknown query parameter "x": GET /api/dev/rl-test takes only user_id, tenant (from a trusted proxy)`},
		{"run, user_id twice from an untrusted peer", request{method: "POST", path: "/run?user_id=a&user_id=b", body: job, peer: client}, 400, "invalid",
			`query parameter "user_id" is given more than once`},
		{"secure-ping, tenant twice from a trusted peer", request{path: "/api/secure/ping?user_id=u1&tenant=a&tenant=b", peer: "127.0.0.1:1"}, 400, "invalid",
			`query parameter "tenant" is given more than once`},
		{"run, bad encoding from an untrusted peer", request{method: "POST", path: "/run?x=%ZZ", body: job, peer: client}, 400, "invalid",
			`query parameter x: value "%ZZ" is not valid percent-encoding`},
		// The developer token is checked first; what passes.
		{"rl-test without the token", request{path: "/api/dev/rl-test?x=1", peer: client}, 401, "unauthorized", ""},
		{"run, identity names from an untrusted peer", request{method: "POST", path: "/run?user_id=u1&tenant=t1", body: job, peer: client}, 202, "", ""},
		{"rl-test, identity name", request{path: "/api/dev/rl-test?user_id=u1", token: devToken, peer: client}, 200, "", ""},
		{"secure-ping from the query", request{path: "/api/secure/ping?user_id=u1&tenant=t1", peer: "127.0.0.1:1"}, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := send(t, s, tt.rq)
			type answer struct {
				Status        int
				Code, Message string
			}
			got := answer{resp.StatusCode, errCode(body), errMessage(body)}
			want := answer{tt.status, tt.code, tt.message}
			if tt.message == "" {
				want.Message = got.Message // any, for a 401 or a pass
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s %s (-want +got):\n%s", tt.rq.method, tt.rq.path, diff)
			}
		})
	}
}
