package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/daemon"
	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// binCLI runs the real refrakt binary with env alone and returns its exit
// code, stdout and stderr.
func binCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	e := []string{"PATH=/usr/bin:/bin"}
	for k, v := range env {
		e = append(e, k+"="+v)
	}
	return runBinary(t, daemontest.Binary(t), e, args...)
}

// runBinary runs bin with args in the environment env and returns its exit
// code, stdout and stderr.
func runBinary(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	// Bounded, so that a command that hangs fails the test in seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = time.Second
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// bucketJSON runs the binary's `limits get KEY -o json` and returns the
// bucket it prints.
func bucketJSON(t *testing.T, env map[string]string, key string) daemon.KeyStateJSON {
	t.Helper()
	code, out, errOut := binCLI(t, env, "limits", "get", key, "-o", "json")
	if code != ExitOK || errOut != "" {
		t.Fatalf("limits get %s -o json: exit %d, stderr %q", key, code, errOut)
	}
	var v struct {
		LimitsView
		Bucket *daemon.KeyStateJSON `json:"bucket"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Bucket == nil {
		t.Fatalf("limits get %s -o json: no bucket (%v)\n%s", key, err, out)
	}
	if len(v.Limits) != 1 || v.Limits[0].Name != "rl-test" {
		t.Errorf("limits get %s -o json: limits %+v, want rl-test's", key, v.Limits)
	}
	return *v.Bucket
}

// TestE2ELimitsGetKeyBucket runs the real binary's `limits get KEY`
// against a real daemon on a real Redis, over the daemon's API and over
// Redis directly: a key never seen is fresh, one that spent tokens shows
// what is left, and the next requests are decided as it said (read five
// times in between, nothing spent); a refused key shows no token and its
// strike. Both drivers show the same bucket; a terminal gets a table, a
// pipe a "bucket" row; a key that is not one is refused with exit 2.
func TestE2ELimitsGetKeyBucket(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "0")
	envs := drivers(t, d, r, "refrakt:")
	for i, de := range envs {
		t.Run(de.name, func(t *testing.T) {
			ip := "203.0.113." + string(rune('5'+i))
			key := "rl-test:ip:" + ip
			b := bucketJSON(t, de.env, key)
			wantPolicy := &daemon.KeyPolicyJSON{Burst: 3, Rate: 3, WindowSeconds: 60, Mode: "enforce"}
			if b.Key != key || b.State != "fresh" || b.Remaining != 3 || b.Capacity != 3 || b.Strikes != 0 || b.LastSeen != nil ||
				!cmp.Equal(wantPolicy, b.Policy) {
				t.Errorf("a key never seen: %+v (policy %+v), want fresh with 3 tokens of 3 under the limit's own policy", b, b.Policy)
			}
			for range 2 {
				if code := rlTest(t, d, ip); code != http.StatusOK {
					t.Fatalf("request: %d", code)
				}
			}
			for range 5 {
				b = bucketJSON(t, de.env, key)
				if b.State != "allowed" || b.Remaining != 1 || b.Capacity != 3 || b.LastSeen == nil {
					t.Fatalf("after 2 requests: %+v, want 1 token of 3 left", b)
				}
			}
			// As it said: one token, then none.
			if first, second := rlTest(t, d, ip), rlTest(t, d, ip); first != http.StatusOK || second != http.StatusTooManyRequests {
				t.Fatalf("the next requests: %d then %d, want 200 then 429", first, second)
			}
			b = bucketJSON(t, de.env, key)
			if b.State != "limited" || b.Remaining != 0 || b.Strikes != 1 || b.LastStrikeAt == nil || b.RetryAfterSeconds <= 0 || b.Capacity != 1 {
				t.Errorf("after a 429: %+v, want limited, no token, 1 strike (capacity 1)", b)
			}

			// The other driver shows the same bucket.
			other := envs[1-i]
			o := bucketJSON(t, other.env, key)
			b.Now = o.Now
			b.RetryAfterSeconds, b.ResetAfterSeconds = o.RetryAfterSeconds, o.ResetAfterSeconds
			if diff := cmp.Diff(b, o); diff != "" {
				t.Errorf("the bucket over %s, then over %s (-first +second):\n%s", de.name, other.name, diff)
			}

			// Piped: a "bucket" row after the limit and its overrides.
			code, out, errOut := binCLI(t, de.env, "limits", "get", key)
			if code != ExitOK || errOut != "" || !strings.Contains(out, "bucket\t"+key+"\tlimited\t0\t1\t1\t\t") {
				t.Errorf("limits get %s piped: exit %d, stderr %q, stdout:\n%s", key, code, errOut, out)
			}
			// A listing of more than one key has no bucket.
			if _, out, _ := binCLI(t, de.env, "limits", "get", "rl-test:ip"); strings.Contains(out, "bucket\t") {
				t.Errorf("limits get rl-test:ip shows a bucket:\n%s", out)
			}
			for _, bad := range []struct{ key, want string }{
				{"nope:ip:192.0.2.1", `unknown limit "nope"`},
				{"rl-test:ip:bad", "bad"},
			} {
				code, _, errOut := binCLI(t, de.env, "limits", "get", bad.key)
				if code != ExitUsage || !strings.Contains(errOut, bad.want) {
					t.Errorf("limits get %s: exit %d, stderr %q; want %d naming %q", bad.key, code, errOut, ExitUsage, bad.want)
				}
			}
		})
	}
}

// TestLimitsGetKeyTable: on a terminal, `limits get KEY` ends with the
// key's bucket as a table of one row.
func TestLimitsGetKeyTable(t *testing.T) {
	for _, de := range []struct {
		name string
		b    daemon.KeyStateJSON
		want string
	}{
		{"fresh", daemon.KeyStateJSON{Key: "rl-test:ip:192.0.2.1", State: "fresh", Capacity: 3, Remaining: 3,
			Policy: &daemon.KeyPolicyJSON{Burst: 3, Rate: 3, WindowSeconds: 60, Mode: "enforce"}},
			"rl-test:ip:192.0.2.1  fresh  3/3     0        -             -         -        -          3/1m    -"},
		{"not in force", daemon.KeyStateJSON{Key: "rl-test:tenant:acme", State: "not_in_force"},
			"rl-test:tenant:acme  not_in_force  -       -        -             -         -        -          -       -"},
	} {
		t.Run(de.name, func(t *testing.T) {
			var out bytes.Buffer
			p := &Printer{Out: &out, Err: &out, TTY: true, Now: time.Now}
			if err := printLimitsBucket(p, LimitsView{Limits: []LimitView{}, Overrides: []OverrideView{}}, &de.b); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "BUCKET") || !strings.Contains(collapse(out.String()), collapse(de.want)) {
				t.Errorf("table:\n%s\nwant a row like %q", out.String(), de.want)
			}
		})
	}
}

// collapse is s with runs of spaces made one.
func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }
