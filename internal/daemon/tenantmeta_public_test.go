package daemon

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// tenantMetaLimit is tenant-meta's entry for limit, asked with token ("" for
// none), and the whole answer.
func tenantMetaLimit(t *testing.T, s *Server, token, tenant, limit string) (map[string]any, map[string]any) {
	t.Helper()
	resp, body := send(t, s, request{path: "/api/public/tenant-meta?tenant=" + tenant, token: token, peer: "198.51.100.201:1"})
	if resp.StatusCode != 200 {
		t.Fatalf("tenant-meta: %d %v", resp.StatusCode, body)
	}
	for _, l := range body["limits"].([]any) {
		if m := l.(map[string]any); m["name"] == limit {
			return m, body
		}
	}
	t.Fatalf("tenant-meta lists no limit %s: %v", limit, body)
	return nil, nil
}

// TestTenantMetaShowsOnlyWhatIsEnforced (sec28 LOW 7): the public
// tenant-meta shows the effective numbers and an enforced override's
// target, capacity, window and expiry; a shadow override enforces nothing
// and does not appear (run:ip in shadow mode told anyone that per-IP
// limiting of run was off), nor does any override's origin, mode or
// creation time. The answer is the same with a developer or operator token.
func TestTenantMetaShowsOnlyWhatIsEnforced(t *testing.T) {
	s, _ := newLimitServer(t)
	base, _ := tenantMetaLimit(t, s, "", "acme", "run")
	baseRL, _ := tenantMetaLimit(t, s, "", "acme", "rl-test")
	setOverride(t, s, `{"target":"run:ip","capacity":1000,"window_seconds":60,"mode":"shadow","origin":"api"}`)
	setOverride(t, s, `{"target":"rl-test:tenant:acme","capacity":500,"window_seconds":60,"mode":"shadow"}`)
	setOverride(t, s, `{"target":"rl-test:global","capacity":700,"window_seconds":60,"mode":"shadow"}`)
	if got, _ := tenantMetaLimit(t, s, "", "acme", "run"); !cmp.Equal(base, got) {
		t.Errorf("run under a shadow run:ip override (-base +got):\n%s", cmp.Diff(base, got))
	}
	if got, _ := tenantMetaLimit(t, s, "", "acme", "rl-test"); !cmp.Equal(baseRL, got) {
		t.Errorf("rl-test under shadow tenant and global overrides (-base +got):\n%s", cmp.Diff(baseRL, got))
	}

	// Enforced ones appear, with what is in effect only. A shadow override
	// more specific than an enforced one is passed over: run's entry shows
	// the limit's enforced override (the one a user's bucket meets).
	setOverride(t, s, `{"target":"run","capacity":40,"window_seconds":120,"ttl_seconds":600}`)
	setOverride(t, s, `{"target":"rl-test:tenant:acme","capacity":5,"window_seconds":60}`)
	run, anon := tenantMetaLimit(t, s, "", "acme", "run")
	want := map[string]any{"target": "run", "capacity": 40.0, "window_seconds": 120.0, "expires_at": "2026-11-25T10:10:00Z"}
	if diff := cmp.Diff(want, run["override"]); diff != "" {
		t.Errorf("run's override (-want +got):\n%s", diff)
	}
	if run["burst"] != 40.0 || run["window_seconds"] != 120.0 {
		t.Errorf("run's numbers %v, want the enforced override's", run)
	}
	rl, _ := tenantMetaLimit(t, s, "", "acme", "rl-test")
	want = map[string]any{"target": "rl-test:tenant:acme", "capacity": 5.0, "window_seconds": 60.0, "expires_at": nil}
	if diff := cmp.Diff(want, rl["tenant_override"]); diff != "" {
		t.Errorf("rl-test's tenant_override (-want +got):\n%s", diff)
	}
	if _, ok := rl["global_override"]; ok {
		t.Errorf("rl-test's global_override shown: %v; it is a shadow one", rl["global_override"])
	}
	for _, l := range anon["limits"].([]any) {
		for _, f := range []string{"override", "tenant_override", "global_override"} {
			o, _ := l.(map[string]any)[f].(map[string]any)
			for k := range o {
				if !slices.Contains([]string{"target", "capacity", "window_seconds", "expires_at"}, k) {
					t.Errorf("%v's %s shows %q", l.(map[string]any)["name"], f, k)
				}
			}
		}
	}
	for _, token := range []string{devToken, opToken} {
		if _, got := tenantMetaLimit(t, s, token, "acme", "run"); !cmp.Equal(anon, got) {
			t.Errorf("tenant-meta with a token differs from the public answer (-public +token):\n%s", cmp.Diff(anon, got))
		}
	}
}
