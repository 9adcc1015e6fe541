package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/redistest"
)

// overrideTargets are the targets of v's overrides, in its order.
func overrideTargets(v LimitsView) []string {
	out := []string{}
	for _, o := range v.Overrides {
		out = append(out, o.Target)
	}
	return out
}

// TestE2ELimitsGetKeyShowsNoOtherKey: `limits get` of one key lists its
// override and those that cover it (its limit's, its scope's), over both
// drivers; not the override of another key that merely starts with it (user
// a:b's run:user:a:b is no key under user a's run:user:a), nor, for a
// longer key, the shorter one.
func TestE2ELimitsGetKeyShowsNoOtherKey(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "0")
	envs := drivers(t, d, r, "refrakt:")
	for _, target := range []string{"run:user", "run:user:a", "run:user:a:b", "secure-ping:user_tenant:u:t", "secure-ping:user_tenant:u:t:x"} {
		mustCLI(t, envs[1].env, "limits", "set", target, "--capacity", "3", "--window", "1m")
	}
	awaitOverride(t, envs[0].env, "", "secure-ping:user_tenant:u:t:x", true)
	for _, tt := range []struct {
		target string
		want   []string
	}{
		{"run:user:a", []string{"run:user", "run:user:a"}},
		{"run:user:a:b", []string{"run:user", "run:user:a:b"}},
		{"run:user", []string{"run:user", "run:user:a", "run:user:a:b"}},
		{"secure-ping:user_tenant:u:t", []string{"secure-ping:user_tenant:u:t"}},
		{"secure-ping:user_tenant:u:t:x", []string{"secure-ping:user_tenant:u:t:x"}},
	} {
		for _, de := range envs {
			if diff := cmp.Diff(tt.want, overrideTargets(limitsJSON(t, de.env, tt.target))); diff != "" {
				t.Errorf("limits get %s over %s (-want +got):\n%s", tt.target, de.name, diff)
			}
		}
	}
}

// TestE2ELimitsTenantAndGlobalTargets: the tenant and global scopes of a
// limit are targets of set, get and unset over both drivers (the review's
// `limits set run:tenant …` said run has no scope tenant, exit 2); a global
// identity other than "all", and a scope a limit lacks, stay refused.
func TestE2ELimitsTenantAndGlobalTargets(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "0")
	envs := drivers(t, d, r, "refrakt:")
	for _, de := range envs {
		t.Run(de.name, func(t *testing.T) {
			// The limit's own override does not apply to its tenant and
			// global buckets: not listed with them.
			for _, target := range []string{"run", "run:tenant", "run:tenant:acme", "run:global"} {
				mustCLI(t, de.env, "limits", "set", target, "--capacity", "5", "--window", "1m")
			}
			awaitOverride(t, envs[0].env, "run", "run:global", true)
			if diff := cmp.Diff([]string{"run:tenant", "run:tenant:acme"}, overrideTargets(limitsJSON(t, de.env, "run:tenant:acme"))); diff != "" {
				t.Errorf("limits get run:tenant:acme (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"run:global"}, overrideTargets(limitsJSON(t, de.env, "run:global:all"))); diff != "" {
				t.Errorf("limits get run:global:all (-want +got):\n%s", diff)
			}
			wantFail(t, de.env, ExitUsage, `identity of scope global is "all", got "x"`, "limits", "set", "run:global:x", "--capacity", "5", "--window", "1m")
			wantFail(t, de.env, ExitUsage, `limit "secure-ping" has no scope "ip"`, "limits", "set", "secure-ping:ip", "--capacity", "5", "--window", "1m")
			mustCLI(t, de.env, "limits", "reset", "run:global:all")
			for _, target := range []string{"run", "run:tenant", "run:tenant:acme", "run:global"} {
				mustCLI(t, de.env, "limits", "unset", target)
			}
			awaitOverride(t, envs[0].env, "run", "run:global", false)
		})
	}
}

// TestE2ELimitsGetChecksIdentity: `limits get TARGET` refuses an identity
// that is not one, over both drivers, exit 2 with the line set, unset and
// reset give (it exited 0 with an empty listing).
func TestE2ELimitsGetChecksIdentity(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "0")
	for _, de := range drivers(t, d, r, "refrakt:") {
		for target, want := range map[string]string{
			"run:ip:bad":                           `"bad" is not an IP address`,
			"run:user:" + strings.Repeat("u", 201): "identity of scope user must be 1 to 200 bytes",
			"run:global:everyone":                  `identity of scope global is "all", got "everyone"`,
		} {
			wantFail(t, de.env, ExitUsage, want, "limits", "get", target)
			wantFail(t, de.env, ExitUsage, want, "limits", "unset", target)
		}
	}
}

// TestE2ELimitsPrintCanonicalTargets: unset and reset print the target and
// key as stored (run:ip:1.2.3.4), not as written (run:ip:::ffff:1.2.3.4),
// over both drivers, as set and get show it.
func TestE2ELimitsPrintCanonicalTargets(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "0")
	const written, stored = "run:ip:::ffff:1.2.3.4", "run:ip:1.2.3.4"
	for _, de := range drivers(t, d, r, "refrakt:") {
		var set OverrideView
		if err := json.Unmarshal([]byte(mustCLI(t, de.env, "limits", "set", written, "--capacity", "5", "--window", "1m", "-o", "json")), &set); err != nil {
			t.Fatal(err)
		}
		got := []string{set.Target,
			compactJSON(t, []byte(mustCLI(t, de.env, "limits", "unset", written, "-o", "json"))),
			compactJSON(t, []byte(mustCLI(t, de.env, "limits", "reset", written, "-o", "json")))}
		want := []string{stored, `{"removed":true,"target":"run:ip:1.2.3.4"}`, `{"key":"run:ip:1.2.3.4","reset":true}`}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("over %s (-want +got):\n%s", de.name, diff)
		}
	}
}

// TestE2ELimitsWarnWhenOff: against a daemon with RATE_LIMIT_ENABLED=false,
// `limits set` says on stderr that the override is not enforced, and its
// JSON carries the warning; a piped or JSON `limits get` says limiting is
// off on stderr (the terminal's listing says it itself). Over both
// drivers, exit 0.
func TestE2ELimitsWarnWhenOff(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "RATE_LIMIT_ENABLED=false"}, "--workers", "0")
	for _, de := range drivers(t, d, r, "refrakt:") {
		t.Run(de.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, de.env, "limits", "set", "run", "--capacity", "5", "--window", "1m", "-o", "json")
			var set map[string]any
			if err := json.Unmarshal([]byte(out), &set); err != nil || code != ExitOK {
				t.Fatalf("limits set: exit %d, %v\n%s", code, err, out)
			}
			if warning, _ := set["warning"].(string); set["target"] != "run" || !strings.Contains(warning, "RATE_LIMIT_ENABLED=false") ||
				!strings.Contains(errOut, "refrakt: warning: rate limiting is off") {
				t.Errorf("limits set: %v, stderr %q; want the override, and both to say limiting is off", set, errOut)
			}
			for _, args := range [][]string{{"limits", "get"}, {"limits", "get", "-o", "json"}, {"limits", "get", "run"}} {
				code, _, errOut := runCLI(t, de.env, args...)
				if code != ExitOK || !strings.Contains(errOut, "refrakt: warning: rate limiting is off") {
					t.Errorf("%s: exit %d, stderr %q; want 0 and a warning", strings.Join(args, " "), code, errOut)
				}
			}
			mustCLI(t, de.env, "limits", "unset", "run")
		})
	}
}
