package daemon

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/config"
)

// fuzzServer is a fresh daemon for one fuzz input: memory backend, manual
// workers (nothing runs unless the input asks), limits off so every input
// reaches its handler rather than a 429.
func fuzzServer(t *testing.T, mutate ...func(*config.Config)) *Server {
	t.Helper()
	noLimits := func(cfg *config.Config) { cfg.RateLimitEnabled = false }
	return newTestServer(t, append([]func(*config.Config){noLimits}, mutate...)...)
}

// serve sends one request through the whole handler chain.
func serve(s *Server, method, target, token string, body []byte, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/", bytes.NewReader(body))
	req.URL.Path, req.URL.RawQuery, _ = strings.Cut(target, "?")
	req.RequestURI = target
	for k, vs := range header {
		req.Header[k] = vs
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

// state is everything a refused request must leave as it was: the jobs
// (all of them, every field) and the overrides.
func state(t *testing.T, s *Server) string {
	t.Helper()
	jobs := serve(s, "GET", "/api/dev/jobs?limit=1000", devToken, nil, nil)
	limits := serve(s, "GET", "/api/dev/rate-limits/config", devToken, nil, nil)
	if jobs.Code != 200 || limits.Code != 200 {
		t.Fatalf("reading state: %d %s / %d %s", jobs.Code, jobs.Body, limits.Code, limits.Body)
	}
	return jobs.Body.String() + "\n" + limits.Body.String()
}

// checkAnswer fails on a 5xx or a body that is not the JSON the API promises.
func checkAnswer(t *testing.T, what string, rec *httptest.ResponseRecorder, allowed ...int) {
	t.Helper()
	for _, a := range allowed {
		if rec.Code == a {
			return
		}
	}
	if rec.Code >= 500 {
		t.Fatalf("%s: server error %d for a client's input: %s", what, rec.Code, rec.Body)
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("%s: %d with a body that is not JSON: %q", what, rec.Code, rec.Body)
	}
	if rec.Code >= 400 {
		var e errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("%s: %d without the error envelope: %s", what, rec.Code, rec.Body)
		}
	}
}

// bodyRoutes are every endpoint that reads a JSON body.
var bodyRoutes = []struct{ method, path string }{
	{"POST", "/run"},
	{"POST", "/assistant"},
	{"POST", "/api/dev/jobs/enqueue"},
	{"POST", "/api/dev/rate-limits/config"},
	{"POST", "/api/dev/rate-limits/reset"},
	{"POST", "/api/dev/rate-limits/ban"},
}

// FuzzEndpointBodies sends any body to every endpoint that reads JSON,
// through the real middleware chain: never a panic, never a 5xx (except a
// 504 from /assistant once a valid job was accepted and did not finish in
// time), and a refused request (4xx) writes no job and no override.
func FuzzEndpointBodies(f *testing.F) {
	seeds := []string{
		`{"type":"ping"}`, `{"type":"echo","payload":{"a":[1,2,{"b":null}]}}`, `{"type":"sleep","payload":{"ms":1}}`,
		`{"type":"fail","max_retries":0}`, `{"type":"echo","queue":"q:1","delay_ms":5,"interval_seconds":1}`,
		`{"type":"ping","timeout_ms":1}`, `{"type":"ping","timeout_ms":0}`, `{"type":"ping","timeout_ms":99999999999}`,
		`{"target":"run","capacity":5,"window_seconds":60}`, `{"target":"run:ip:203.0.113.7","capacity":1,"window_seconds":1,"ttl_seconds":5,"mode":"shadow"}`,
		`{"target":"nope:x:y:z","capacity":-1,"window_seconds":0}`, `{"key":"run:ip:203.0.113.7"}`, `{"key":""}`,
		``, `{`, `[]`, `null`, `{}`, `{"type":1}`, `{"type":"echo","max_retries":-1}`, `{"type":"echo","max_retries":1e9}`,
		`{"type":"echo","payload":"\u0000"}`, `{"type":"ping"}{}`, "\xff\xfe", `{"type":"echo","unknown":1}`,
		`{"type":"sleep","payload":{"ms":9223372036854775807}}`, `{"type":"echo","delay_ms":-9223372036854775808}`,
		`{"target":"run","capacity":2147483648,"window_seconds":9223372036854775807}`,
	}
	for i, b := range seeds {
		f.Add(uint8(i), []byte(b))
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := bodyRoutes[int(route)%len(bodyRoutes)]
		if rt.path == "/assistant" {
			// Keep the wait short: a body asking for a long timeout is
			// still decoded and validated, only the wait is capped below.
			body = capAssistantTimeout(body)
		}
		s := fuzzServer(t)
		before := state(t, s)
		rec := serve(s, rt.method, rt.path, devToken, body, nil)
		what := rt.method + " " + rt.path + " " + strings.ToValidUTF8(string(body), "?")
		if rt.path == "/assistant" && rec.Code == http.StatusGatewayTimeout {
			if state(t, s) == before {
				t.Fatalf("%s: 504 but no job was enqueued", what)
			}
			return
		}
		checkAnswer(t, what, rec)
		if rec.Code >= 400 {
			if after := state(t, s); after != before {
				t.Fatalf("%s: refused with %d but state changed:\nbefore %s\nafter  %s", what, rec.Code, before, after)
			}
		}
	})
}

// capAssistantTimeout rewrites a valid timeout_ms above 20 to 20, so that
// /assistant with manual workers answers 504 in milliseconds.
func capAssistantTimeout(body []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || m == nil {
		return body
	}
	var ms int64
	if raw, ok := m["timeout_ms"]; ok && json.Unmarshal(raw, &ms) == nil && ms <= 20 {
		return body
	}
	if raw, ok := m["timeout_ms"]; ok && json.Unmarshal(raw, &ms) != nil {
		return body // a wrong type: must be refused as it is
	}
	m["timeout_ms"] = json.RawMessage("20")
	out, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return out
}

// FuzzOverrideTarget sets an override for any target, capacity, window and
// mode: a 4xx leaves the overrides as they were; a 200 shows the override
// in the list and DELETE removes it again.
func FuzzOverrideTarget(f *testing.F) {
	for _, tg := range []string{"run", "run:ip", "run:ip:203.0.113.7", "secure-ping:user_tenant:u1:t1", "run:user:a:b", "nope", "run:nope", "", ":", "run::", "run:ip:", "tenant-meta:ip:2001:db8::1", "RUN", "run:ip:" + strings.Repeat("a", 600), "run:ip:\x00", "run:ip:%zz", "run:user:a&&", "run:ip:<b>"} {
		f.Add(tg, 5, 60, "")
	}
	f.Add("run", 0, 60, "shadow")
	f.Add("run", 1, -1, "enforce")
	f.Add("run", -5, 1, "bogus")
	f.Fuzz(func(t *testing.T, target string, capacity, window int, mode string) {
		s := fuzzServer(t)
		before := state(t, s)
		body, _ := json.Marshal(setOverrideRequest{Target: target, Capacity: capacity, WindowSeconds: window, Mode: mode})
		rec := serve(s, "POST", "/api/dev/rate-limits/config", devToken, body, nil)
		what := "override " + string(body)
		checkAnswer(t, what, rec)
		if rec.Code >= 400 {
			if after := state(t, s); after != before {
				t.Fatalf("%s: refused with %d but state changed", what, rec.Code)
			}
			return
		}
		var got overrideJSON
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		list := serve(s, "GET", "/api/dev/rate-limits/config", devToken, nil, nil)
		// Decoded, not searched as text: the API writes "&", "<" and ">"
		// as they are, while json.Marshal would escape them.
		var listed limitsConfigResponse
		if err := json.Unmarshal(list.Body.Bytes(), &listed); err != nil {
			t.Fatalf("%s: list: %v", what, err)
		}
		if !slices.ContainsFunc(listed.Overrides, func(o overrideJSON) bool { return o.Target == got.Target }) {
			t.Fatalf("%s: accepted as %q but not listed: %s", what, got.Target, list.Body)
		}
		del := serve(s, "DELETE", "/api/dev/rate-limits/config?target="+url.QueryEscape(got.Target), devToken, nil, nil)
		checkAnswer(t, what+" delete", del)
		if del.Code != 200 {
			t.Fatalf("%s: delete of %q: %d %s", what, got.Target, del.Code, del.Body)
		}
		if after := state(t, s); after != before {
			t.Fatalf("%s: after set and delete the overrides differ:\nbefore %s\nafter  %s", what, before, after)
		}
	})
}

// FuzzJobPayloads enqueues any payload for every built-in type and, when it
// is accepted, runs it at once (manual mode): no panic, no 5xx; a refused
// payload stores no job; an accepted one ends in a final state.
func FuzzJobPayloads(f *testing.F) {
	types := []string{"ping", "fail", "sleep", "echo", "nope", ""}
	for _, p := range []string{``, `null`, `{}`, `{"ms":1}`, `{"ms":0}`, `{"ms":-1}`, `{"ms":1.5}`, `{"ms":"1"}`, `{"ms":1,"x":2}`, `[1,2,3]`, `"s"`, `0`, `{"a":{"b":{"c":[]}}}`, `{"ms":3600001}`, "\"\\ud800\"", `{"ms":1}{}`, `nul`} {
		for i := range types {
			f.Add(uint8(i), p)
		}
	}
	f.Fuzz(func(t *testing.T, typ uint8, payload string) {
		s := fuzzServer(t)
		before := state(t, s)
		req := map[string]any{"type": types[int(typ)%len(types)], "max_retries": 0}
		if payload != "" {
			req["payload"] = json.RawMessage(payload)
		}
		body, err := json.Marshal(req)
		if err != nil {
			// Not valid JSON as a payload: send it raw, it must be refused.
			body = []byte(`{"type":"` + types[int(typ)%len(types)] + `","payload":` + payload + `}`)
		}
		rec := serve(s, "POST", "/api/dev/jobs/enqueue", devToken, body, nil)
		what := "enqueue " + strings.ToValidUTF8(string(body), "?")
		checkAnswer(t, what, rec)
		if rec.Code >= 400 {
			if after := state(t, s); after != before {
				t.Fatalf("%s: refused with %d but a job was stored: %s", what, rec.Code, after)
			}
			return
		}
		var j struct {
			ID      string          `json:"id"`
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &j); err != nil || j.ID == "" {
			t.Fatalf("%s: 202 without a job: %s", what, rec.Body)
		}
		if j.Type == "sleep" {
			var p struct{ MS int64 }
			_ = json.Unmarshal(j.Payload, &p)
			if time.Duration(p.MS)*time.Millisecond > 5*time.Millisecond {
				return // valid, but too long to run in a fuzz iteration
			}
		}
		run := serve(s, "POST", "/api/dev/jobs/"+j.ID+"/run", devToken, nil, nil)
		checkAnswer(t, what+" run", run)
		var done struct{ Status string }
		_ = json.Unmarshal(run.Body.Bytes(), &done)
		if run.Code != 200 || (done.Status != "succeeded" && done.Status != "dead") {
			t.Fatalf("%s: run answered %d %s", what, run.Code, run.Body)
		}
	})
}

// FuzzIdentityHeaders sends any peer, X-Forwarded-For chain, client-IP
// header and identity headers to the limited routes: never a panic or a
// 5xx; an untrusted peer's identity and tier headers are ignored (its key
// is its own address); a trusted peer's client address is a well-formed IP.
func FuzzIdentityHeaders(f *testing.F) {
	f.Add("203.0.113.9:4000", "198.51.100.1", "", "u1", "t1", "premium", false)
	f.Add("127.0.0.1:4000", "198.51.100.1, 10.0.0.1", "", "u1", "t1", "premium", false)
	f.Add("127.0.0.1:4000", "garbage, 198.51.100.1", "2001:db8::1", "", "", "", false)
	f.Add("[::1]:80", "::ffff:1.2.3.4,fe80::1%eth0", "not-an-ip", "u\x00", "t\n", "PREMIUM ", true)
	f.Add("[2001:db8::5]:1", strings.Repeat("1.1.1.1,", 200), "", strings.Repeat("u", 5000), "t", "gold", false)
	f.Add("bogus", "", "", "", "", "", false)
	f.Add("", ",,,", "127.0.0.1", "u", "", "", true)
	rules := newIdentityRules(config.Default().TrustedProxies, "CF-Connecting-IP")
	f.Fuzz(func(t *testing.T, remote, xff, cfip, user, tenant, tier string, withToken bool) {
		h := http.Header{}
		h.Set("X-Forwarded-For", xff)
		h.Set("CF-Connecting-IP", cfip)
		h.Set("X-User-ID", user)
		h.Set("X-Tenant-ID", tenant)
		h.Set("X-RateLimit-Tier", tier)
		req := httptest.NewRequest("GET", "/api/secure/ping", nil)
		req.RemoteAddr = remote
		req.Header = h.Clone()
		id := rules.identify(req, withToken)
		peer := peerAddr(remote)
		trusted := peer.IsValid() && rules.isTrusted(peer)
		if !trusted {
			want := ""
			if peer.IsValid() {
				want = peer.String()
			}
			if id.IP != want {
				t.Fatalf("untrusted peer %q: IP %q, want the peer %q", remote, id.IP, want)
			}
			if !withToken && (id.User != "" || id.Tenant != "" || id.Premium) {
				t.Fatalf("untrusted peer %q without a token: identity headers believed: %+v", remote, id)
			}
		} else if _, _, ok := parseIP(id.IP); !ok {
			t.Fatalf("trusted peer %q: client IP %q is not an address", remote, id.IP)
		}

		s := fuzzServer(t, func(c *config.Config) { c.RateLimitEnabled = true })
		token := ""
		if withToken {
			token = devToken
		}
		for _, path := range []string{"/api/secure/ping", "/run", "/api/public/tenant-meta?tenant=t1"} {
			method, body := "GET", []byte(nil)
			if path == "/run" {
				method, body = "POST", []byte(`{"type":"ping"}`)
			}
			r := httptest.NewRequest(method, path, bytes.NewReader(body))
			r.RemoteAddr = remote
			for k, vs := range h {
				r.Header[k] = vs
			}
			if token != "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, r)
			checkAnswer(t, path+" from "+remote, rec)
		}
	})
}
