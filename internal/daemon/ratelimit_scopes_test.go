package daemon

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/refrakt/refrakt/internal/config"
)

// setOverride posts an override and fails the test unless it is stored.
func setOverride(t *testing.T, s *Server, body string) {
	t.Helper()
	if resp, out := send(t, s, request{method: "POST", path: "/api/dev/rate-limits/config", token: devToken, body: body}); resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d %v", body, resp.StatusCode, out)
	}
}

// limitOutcome is what the scope tests compare of a limited response.
type limitOutcome struct {
	Status      int
	Scope, Key  string
	BannedUntil bool
}

func outcomeOf(status int, body map[string]any) limitOutcome {
	o := limitOutcome{Status: status}
	if e, ok := body["error"].(map[string]any); ok {
		d, _ := e["details"].(map[string]any)
		o.Scope, _ = d["scope"].(string)
		o.Key, _ = d["key"].(string)
		_, o.BannedUntil = d["banned_until"]
	}
	return o
}

// rlTest sends GET /api/dev/rl-test from peer with the developer token
// (which grants the identity headers), as tenant when not empty.
func rlTest(t *testing.T, s *Server, peer, tenant string) limitOutcome {
	t.Helper()
	h := map[string]string{}
	if tenant != "" {
		h["X-Tenant-ID"] = tenant
	}
	resp, body := send(t, s, request{path: "/api/dev/rl-test", token: devToken, peer: peer, headers: h})
	return outcomeOf(resp.StatusCode, body)
}

// tenantMetaOf answers tenant-meta's entry for limit as tenant sees it.
func tenantMetaOf(t *testing.T, s *Server, tenant, limit string) map[string]any {
	t.Helper()
	resp, body := send(t, s, request{path: "/api/public/tenant-meta?tenant=" + tenant, peer: "198.51.100.200:1"})
	if resp.StatusCode != 200 {
		t.Fatalf("tenant-meta: %d %v", resp.StatusCode, body)
	}
	for _, l := range body["limits"].([]any) {
		if m := l.(map[string]any); m["name"] == limit {
			return m
		}
	}
	t.Fatalf("tenant-meta lists no limit %s: %v", limit, body)
	return nil
}

// overrideTarget is the target of tenant-meta's override field name in m,
// "" when absent.
func overrideTarget(m map[string]any, name string) string {
	o, _ := m[name].(map[string]any)
	target, _ := o["target"].(string)
	return target
}

// TestTenantScopeOverHTTP: once an override targets rl-test:tenant, a
// tenant's requests share a bucket whatever their address; a 429 it gives
// names the scope and the tenant's key; requests of other tenants, or
// without one, are not limited by it; tenant-meta names the override; the
// metrics count the scope, not the tenant.
func TestTenantScopeOverHTTP(t *testing.T) {
	s, _ := newLimitServer(t)
	if got := overrideTarget(tenantMetaOf(t, s, "acme", "rl-test"), "tenant_override"); got != "" {
		t.Errorf("tenant-meta before any override: tenant_override %q, want none", got)
	}
	setOverride(t, s, `{"target":"rl-test:tenant","capacity":2,"window_seconds":60}`)
	got := []limitOutcome{
		rlTest(t, s, "192.0.2.1:1", "acme"),
		rlTest(t, s, "192.0.2.2:1", "acme"),
		rlTest(t, s, "192.0.2.3:1", "acme"),
		rlTest(t, s, "192.0.2.3:1", "other"),
		rlTest(t, s, "192.0.2.3:1", ""),
	}
	want := []limitOutcome{
		{Status: 200}, {Status: 200},
		{Status: 429, Scope: "tenant", Key: "rl-test:tenant:acme"},
		{Status: 200}, {Status: 200},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rl-test by tenant (-want +got):\n%s", diff)
	}
	for tenant, target := range map[string]string{"acme": "rl-test:tenant", "other": "rl-test:tenant"} {
		if got := overrideTarget(tenantMetaOf(t, s, tenant, "rl-test"), "tenant_override"); got != target {
			t.Errorf("tenant-meta of %s: tenant_override %q, want %q", tenant, got, target)
		}
	}
	// A tenant's own override: its entry names it, the others' the scope's.
	setOverride(t, s, `{"target":"run:tenant:acme","capacity":50,"window_seconds":60}`)
	if m := tenantMetaOf(t, s, "acme", "run"); overrideTarget(m, "tenant_override") != "run:tenant:acme" || overrideTarget(m, "override") != "" {
		t.Errorf("tenant-meta of acme for run: %v, want tenant_override run:tenant:acme and no override", m)
	}
	if got := overrideTarget(tenantMetaOf(t, s, "other", "run"), "tenant_override"); got != "" {
		t.Errorf("tenant-meta of other for run: tenant_override %q, want none (only acme has one)", got)
	}

	for i := range 300 {
		rlTest(t, s, fmt.Sprintf("192.0.2.%d:1", 10+i%200), fmt.Sprintf("tenant-%d", i))
	}
	if n := testutil.CollectAndCount(s.metrics.RateLimitDecisions); n > 6 {
		t.Errorf("refrakt_ratelimit_decisions_total has %d series after 300 tenants", n)
	}
	text := scrape(t, s)
	if !strings.Contains(text, `refrakt_ratelimit_decisions_total{decision="limited",limit="rl-test",scope="tenant"} 1`) {
		t.Errorf("the tenant's refusal is not counted under scope tenant:\n%s", grep(text, "decisions_total"))
	}
	if strings.Contains(text, "acme") || strings.Contains(text, "tenant-1") {
		t.Error("a tenant reached a label")
	}
}

// TestGlobalScopeOverHTTP: once an override targets rl-test:global, all
// the limit's requests share one bucket, rl-test:global:all; its 429s name
// the global scope and never turn into a ban, however many; tenant-meta
// names the override for every tenant; without it, the scope is gone.
func TestGlobalScopeOverHTTP(t *testing.T) {
	s, clock := newLimitServer(t)
	setOverride(t, s, `{"target":"rl-test:global","capacity":2,"window_seconds":60}`)
	var got []limitOutcome
	for i := range 12 { // BAN_AFTER_STRIKES is 5
		got = append(got, rlTest(t, s, fmt.Sprintf("192.0.2.%d:1", 1+i%3), ""))
	}
	refused := limitOutcome{Status: 429, Scope: "global", Key: "rl-test:global:all"}
	want := []limitOutcome{{Status: 200}, {Status: 200}}
	for range 10 {
		want = append(want, refused)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rl-test with a global bucket (-want +got):\n%s", diff)
	}
	clock.Advance(30 * time.Second) // one token back
	if diff := cmp.Diff([]limitOutcome{{Status: 200}, refused}, []limitOutcome{rlTest(t, s, "192.0.2.1:1", ""), rlTest(t, s, "192.0.2.9:1", "")}); diff != "" {
		t.Errorf("a token later (-want +got):\n%s", diff)
	}
	if got := overrideTarget(tenantMetaOf(t, s, "acme", "rl-test"), "global_override"); got != "rl-test:global" {
		t.Errorf("tenant-meta: global_override %q, want rl-test:global", got)
	}
	// The snapshot (and so `refrakt top`) shows the bucket under its scope,
	// unpenalized.
	_, snap := send(t, s, request{path: "/api/obs/snapshot", token: devToken})
	buckets, _ := snap["buckets"].([]any)
	found := false
	for _, b := range buckets {
		if m := b.(map[string]any); m["key"] == "rl-test:global:all" {
			found = m["scope"] == "global" && m["limit"] == "rl-test" && m["strikes"] == 0.0
		}
	}
	if !found {
		t.Errorf("snapshot buckets %v, want rl-test:global:all under scope global without strikes", buckets)
	}
	if resp, body := send(t, s, request{method: "DELETE", path: "/api/dev/rate-limits/config?target=rl-test:global", token: devToken}); resp.StatusCode != 200 {
		t.Fatalf("DELETE: %d %v", resp.StatusCode, body)
	}
	if got := rlTest(t, s, "192.0.2.9:1", ""); got.Status != 200 {
		t.Errorf("without the override: %+v, want 200", got)
	}
	if got := overrideTarget(tenantMetaOf(t, s, "acme", "rl-test"), "global_override"); got != "" {
		t.Errorf("tenant-meta without the override: global_override %q, want none", got)
	}
}

// TestLimitsConfigGetChecksIdentity: GET /api/dev/rate-limits/config?target=
// checks the target's identity as POST and DELETE do (400 naming what is
// wrong), where it answered 200 with an empty listing; a good one is
// answered under its canonical form.
func TestLimitsConfigGetChecksIdentity(t *testing.T) {
	s, _ := newLimitServer(t)
	for target, want := range map[string]string{
		"run:ip:bad":                           `"bad" is not an IP address`,
		"run:user:" + strings.Repeat("u", 201): "identity of scope user must be 1 to 200 bytes",
		"run:global:everyone":                  `identity of scope global is "all"`,
		"secure-ping:user_tenant:u1":           "identity of scope user_tenant is <user>:<tenant>",
		"run:ip:":                              "identity of scope ip must be 1 to 200 bytes",
	} {
		resp, body := send(t, s, request{path: "/api/dev/rate-limits/config?target=" + url.QueryEscape(target), token: devToken})
		if resp.StatusCode != 400 || errCode(body) != "invalid" || !strings.Contains(errMessage(body), want) {
			t.Errorf("GET ?target=%s: %d %v, want 400 invalid saying %q", target, resp.StatusCode, body, want)
		}
	}
	setOverride(t, s, `{"target":"run:ip:1.2.3.4","capacity":5,"window_seconds":60}`)
	resp, body := send(t, s, request{path: "/api/dev/rate-limits/config?target=" + url.QueryEscape("run:ip:::ffff:1.2.3.4"), token: devToken})
	overrides, _ := body["overrides"].([]any)
	if resp.StatusCode != 200 || len(overrides) != 1 {
		t.Errorf("GET ?target=run:ip:::ffff:1.2.3.4: %d %v, want the override of run:ip:1.2.3.4", resp.StatusCode, body)
	}
}

// TestLimitsConfigNamesMissingFields: a body that leaves out a required
// field is told that field is required (it was told the 0 it decoded to
// was out of range, or of an unknown limit "" in target "").
func TestLimitsConfigNamesMissingFields(t *testing.T) {
	s, _ := newLimitServer(t)
	for _, c := range []struct{ path, body, want string }{
		{"/api/dev/rate-limits/config", `{"target":"run","capacity":5}`, "field window_seconds is required"},
		{"/api/dev/rate-limits/config", `{"target":"run","window_seconds":60}`, "field capacity is required"},
		{"/api/dev/rate-limits/config", `{"capacity":5,"window_seconds":60}`, "field target is required"},
		{"/api/dev/rate-limits/config", `{}`, "field target is required"},
		{"/api/dev/rate-limits/reset", `{}`, "field key is required"},
	} {
		resp, body := send(t, s, request{method: "POST", path: c.path, token: devToken, body: c.body})
		if resp.StatusCode != 400 || errCode(body) != "invalid" || !strings.Contains(errMessage(body), c.want) {
			t.Errorf("POST %s %s: %d %v, want 400 invalid saying %q", c.path, c.body, resp.StatusCode, body, c.want)
		}
	}
}

// TestLimitsConfigAnswersCanonicalTargets: DELETE and reset answer the
// target and key as stored (run:ip:1.2.3.4), not as written
// (run:ip:::ffff:1.2.3.4), as POST does.
func TestLimitsConfigAnswersCanonicalTargets(t *testing.T) {
	s, _ := newLimitServer(t)
	const written, stored = "run:ip:::ffff:1.2.3.4", "run:ip:1.2.3.4"
	setOverride(t, s, `{"target":"`+written+`","capacity":5,"window_seconds":60}`)
	_, del := send(t, s, request{method: "DELETE", path: "/api/dev/rate-limits/config?target=" + url.QueryEscape(written), token: devToken})
	_, reset := send(t, s, request{method: "POST", path: "/api/dev/rate-limits/reset", token: devToken, body: `{"key":"` + written + `"}`})
	if diff := cmp.Diff([]map[string]any{{"deleted": stored}, {"reset": stored}}, []map[string]any{del, reset}); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
}

// TestLimitsConfigWarnsWhenOff: with RATE_LIMIT_ENABLED=false, POST
// answers the override with a warning that it is not enforced; with
// limiting on, without one.
func TestLimitsConfigWarnsWhenOff(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		s, _ := newLimitServer(t, func(c *config.Config) { c.RateLimitEnabled = enabled })
		resp, body := send(t, s, request{method: "POST", path: "/api/dev/rate-limits/config", token: devToken,
			body: `{"target":"run","capacity":5,"window_seconds":60}`})
		warning, _ := body["warning"].(string)
		if resp.StatusCode != 200 || body["target"] != "run" || strings.Contains(warning, "RATE_LIMIT_ENABLED=false") == enabled {
			t.Errorf("RATE_LIMIT_ENABLED=%v: POST answered %d %v", enabled, resp.StatusCode, body)
		}
	}
}

// TestTenantMetaReadsNoCallerTenant: tenant-meta's ?tenant= is the tenant
// it describes, not the caller's, also under an override of
// tenant-meta:tenant: a trusted proxy's X-Tenant-ID beside another
// ?tenant= is no ambiguous identity (400), and no tenant bucket limits the
// route; an override of another limit's tenant scope reads the caller's
// tenant on its route (rl-test), a 400 when the proxy's two sources
// disagree.
func TestTenantMetaReadsNoCallerTenant(t *testing.T) {
	s, _ := newLimitServer(t)
	setOverride(t, s, `{"target":"tenant-meta:tenant","capacity":1,"window_seconds":60}`)
	for i := range 3 {
		resp, body := send(t, s, request{path: "/api/public/tenant-meta?tenant=described", peer: "127.0.0.1:1",
			headers: map[string]string{"X-Tenant-ID": "caller"}})
		if resp.StatusCode != 200 {
			t.Fatalf("tenant-meta request %d: %d %v, want 200", i+1, resp.StatusCode, body)
		}
	}
	setOverride(t, s, `{"target":"rl-test:tenant","capacity":1,"window_seconds":60}`)
	resp, body := send(t, s, request{path: "/api/dev/rl-test?tenant=other", token: devToken, headers: map[string]string{"X-Tenant-ID": "caller"}})
	if resp.StatusCode != 400 || !strings.Contains(errMessage(body), "query parameter tenant is not the identity headers'") {
		t.Errorf("rl-test with two tenants: %d %v, want 400 saying the two disagree", resp.StatusCode, body)
	}
}
