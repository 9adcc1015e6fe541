package cli

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// checkAs asks daemon d's decision route for limit as the client ip (named
// by CF-Connecting-IP; the test's loopback peer is a trusted proxy) and
// returns the status.
func checkAs(t *testing.T, d *daemontest.Daemon, limit, ip string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, d.URL+"/api/check/"+limit, nil)
	req.Header.Set("CF-Connecting-IP", ip)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestE2ECheckAcrossDaemons: two daemons on one Redis with the same
// RATE_LIMITS share a custom limit's bucket; `limits set --redis` and
// `limits get` know the limit; a daemon started without RATE_LIMITS beside
// them keeps working (its limits get, override refresh and snapshot do not
// fail on the others' limit).
func TestE2ECheckAcrossDaemons(t *testing.T) {
	r := redistest.Start(t)
	const limits = "api=4/1m scopes=ip"
	env := []string{"QUEUE_URL=" + r.URL(), "RATE_LIMITS=" + limits}
	a := startDaemon(t, env, "--workers", "0")
	b := startDaemon(t, env, "--workers", "0")

	t.Run("one bucket across both", func(t *testing.T) {
		ip := "198.51.100.1"
		var got []int
		for i := range 4 {
			d := a
			if i%2 == 1 {
				d = b
			}
			got = append(got, checkAs(t, d, "api", ip))
		}
		got = append(got, checkAs(t, a, "api", ip), checkAs(t, b, "api", ip))
		want := []int{200, 200, 200, 200, 429, 429}
		if !equalInts(got, want) {
			t.Errorf("a, b, a, b, a, b: %v, want %v (the burst of 4 spent across both)", got, want)
		}
		if got := checkAs(t, b, "api", "198.51.100.2"); got != 200 {
			t.Errorf("another client: %d", got)
		}
	})

	state := t.TempDir()
	direct := map[string]string{"REFRAKT_REDIS": r.URL(), "RATE_LIMITS": limits, "XDG_STATE_HOME": state, "HOME": state}
	t.Run("limits set and get over redis", func(t *testing.T) {
		mustCLI(t, direct, "limits", "set", "api:ip:198.51.100.3", "--capacity", "1", "--window", "1m")
		v := limitsJSON(t, direct, "api")
		if len(v.Limits) != 1 || v.Limits[0].Name != "api" || v.Limits[0].Burst != 4 || v.Limits[0].WindowSeconds != 60 || v.Limits[0].PremiumBurst != 12 {
			t.Errorf("limits get api --redis: %+v", v.Limits)
		}
		if _, ok := findOverride(v, "api:ip:198.51.100.3"); !ok {
			t.Errorf("limits get api --redis lacks the override: %+v", v.Overrides)
		}
		// The daemons enforce it within a second.
		deadline := time.Now().Add(5 * time.Second)
		for {
			mustCLI(t, direct, "limits", "reset", "api:ip:198.51.100.3")
			first, second := checkAs(t, a, "api", "198.51.100.3"), checkAs(t, b, "api", "198.51.100.3")
			if first == 200 && second == 429 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("override not enforced after 5s: %d then %d", first, second)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Without RATE_LIMITS in the shell, the daemons' published limits
		// are known.
		bare := map[string]string{"REFRAKT_REDIS": r.URL(), "XDG_STATE_HOME": state, "HOME": state}
		mustCLI(t, bare, "limits", "reset", "api:ip:198.51.100.3")
		if v := limitsJSON(t, bare, "api:ip:198.51.100.3"); len(v.Limits) != 1 || len(v.Overrides) != 1 {
			t.Errorf("limits get api:ip:198.51.100.3 --redis without RATE_LIMITS: %+v", v)
		}
		// A shell whose RATE_LIMITS differs: the daemons' published
		// policy wins (scopes=ip here), with one warning line.
		other := map[string]string{"REFRAKT_REDIS": r.URL(), "RATE_LIMITS": "api=3/1m scopes=user", "XDG_STATE_HOME": state, "HOME": state}
		code, _, errOut := runCLI(t, other, "limits", "set", "api:ip:198.51.100.7", "--capacity", "1", "--window", "1m")
		if code != ExitOK || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "the daemons' policy is used") {
			t.Errorf("limits set api:ip:… with another RATE_LIMITS in the shell: exit %d, stderr %q; want 0 and one warning line", code, errOut)
		}
		// An unknown limit says where it was looked for.
		code, _, errOut = runCLI(t, bare, "limits", "set", "nope:ip:198.51.100.7", "--capacity", "1", "--window", "1m")
		if code != ExitUsage || !strings.Contains(errOut, "neither this shell's RATE_LIMITS nor the set the daemons on this Redis last published") ||
			!strings.Contains(errOut, "set RATE_LIMITS in the shell") {
			t.Errorf("limits set of an unknown limit: exit %d, stderr %q", code, errOut)
		}
		apiEnv := map[string]string{"REFRAKT_SERVER": a.URL, "REFRAKT_TOKEN": a.Token, "XDG_STATE_HOME": state, "HOME": state}
		if v := limitsJSON(t, apiEnv, "api"); len(v.Limits) != 1 || v.Limits[0].Name != "api" {
			t.Errorf("limits get api over the daemon: %+v", v.Limits)
		}
		if out := mustCLI(t, apiEnv, "limits", "get"); !strings.Contains(out, "api") {
			t.Errorf("limits get over the daemon lacks api:\n%s", out)
		}
	})

	t.Run("a daemon without RATE_LIMITS beside them", func(t *testing.T) {
		c := startDaemon(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "0")
		cEnv := map[string]string{"REFRAKT_SERVER": c.URL, "REFRAKT_TOKEN": c.Token, "XDG_STATE_HOME": state, "HOME": state}
		// The others' override of api is stored; c lists its own limits.
		v := limitsJSON(t, cEnv)
		if len(v.Limits) != 5 {
			t.Errorf("limits get over c: %d limits, want the 5 built-ins", len(v.Limits))
		}
		mustCLI(t, cEnv, "limits", "get", "rl-test")
		// Over Redis the published limits are the last daemon's to write
		// them (README: daemons on one Redis need the same RATE_LIMITS):
		// listing them all works whichever it was.
		mustCLI(t, direct, "limits", "get")
		// Its refresh still reads overrides: one set now is enforced by c.
		mustCLI(t, direct, "limits", "set", "rl-test:ip:198.51.100.4", "--capacity", "1", "--window", "1m")
		deadline := time.Now().Add(5 * time.Second)
		for {
			first, second := rlTest(t, c, "198.51.100.4"), rlTest(t, c, "198.51.100.4")
			if first == 200 && second == 429 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("c does not enforce a new override after 5s: %d then %d\n%s", first, second, c.Log())
			}
			mustCLI(t, direct, "limits", "reset", "rl-test:ip:198.51.100.4")
			time.Sleep(50 * time.Millisecond)
		}
		// Its snapshot shows the others' buckets without failing.
		if resp, body := c.Call("GET", "/api/obs/rate-limits", ""); resp.StatusCode != 200 || !strings.Contains(string(body), "api:ip:198.51.100.1") {
			t.Errorf("c's /api/obs/rate-limits: %d %s", resp.StatusCode, body)
		}
		// c does not decide api: an earlier daemon, or one without it, answers 404.
		if got := checkAs(t, c, "api", "198.51.100.5"); got != 404 {
			t.Errorf("c's decision route for api: %d, want 404", got)
		}
		for _, bad := range []string{"cannot read the overrides", "level=ERROR"} {
			if strings.Contains(c.Log(), bad) {
				t.Errorf("c's log holds %q:\n%s", bad, c.Log())
			}
		}
		// And the daemons with api go on deciding it.
		if got := checkAs(t, a, "api", "198.51.100.6"); got != 200 {
			t.Errorf("a after c started: %d", got)
		}
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestServeRefusesBadRateLimits: a bad RATE_LIMITS stops start-up with
// exit 2 and one line naming the setting and the entry.
func TestServeRefusesBadRateLimits(t *testing.T) {
	code, _, errOut := runCLI(t, map[string]string{"RATE_LIMITS": "api=1/1m; run=5/1s"}, "serve", "--addr", "127.0.0.1:0")
	if code != ExitUsage || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "RATE_LIMITS") || !strings.Contains(errOut, "entry 2") {
		t.Errorf("exit %d, stderr %q; want 2 and one line naming RATE_LIMITS and entry 2", code, errOut)
	}
}
