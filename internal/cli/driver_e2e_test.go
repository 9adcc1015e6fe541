package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// driverEnv is how one driver is selected: the environment of the CLI.
type driverEnv struct {
	name string
	env  map[string]string
}

// mustCLI runs the command line and fails the test unless it exits 0.
func mustCLI(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(t, env, args...)
	if code != ExitOK {
		t.Fatalf("refrakt %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
	}
	return out
}

// wantFail runs the command line and checks its exit code and that it
// said why in one line on stderr, containing want.
func wantFail(t *testing.T, env map[string]string, code int, want string, args ...string) {
	t.Helper()
	got, _, errOut := runCLI(t, env, args...)
	if got != code {
		t.Errorf("refrakt %s: exit %d, want %d (stderr %q)", strings.Join(args, " "), got, code, errOut)
	}
	if lines := strings.Count(errOut, "\n"); lines != 1 || !strings.Contains(errOut, want) {
		t.Errorf("refrakt %s: stderr %q, want one line containing %q", strings.Join(args, " "), errOut, want)
	}
}

// jobJSON runs a jobs command with -o json and decodes the job it prints.
func jobJSON(t *testing.T, env map[string]string, args ...string) queue.Job {
	t.Helper()
	var j queue.Job
	out := mustCLI(t, env, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("refrakt %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
	return j
}

// startDaemon runs `refrakt serve` and waits until it is ready (its
// backend connected).
func startDaemon(t *testing.T, env []string, args ...string) *daemontest.Daemon {
	t.Helper()
	d := daemontest.Start(t, env, args...)
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	return d
}

// compactJSON is raw without insignificant space.
func compactJSON(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return b.String()
}

// drivers are the two ways to reach a daemon d on Redis r: its API, and
// Redis directly with the daemon's key prefix.
func drivers(t *testing.T, d *daemontest.Daemon, r *redistest.Server, prefix string) []driverEnv {
	state := t.TempDir() // no token file: the token is given
	return []driverEnv{
		{"api", map[string]string{"REFRAKT_SERVER": d.URL, "REFRAKT_TOKEN": d.Token, "XDG_STATE_HOME": state, "HOME": state}},
		{"redis", map[string]string{"REFRAKT_REDIS": r.URL(), "REFRAKT_PREFIX": prefix, "XDG_STATE_HOME": state, "HOME": state}},
	}
}

// TestE2EJobsManualMode drives every jobs command over both drivers
// against a daemon in manual mode (no workers) on a real Redis.
func TestE2EJobsManualMode(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=e2e:"}, "--workers", "0")
	envs := drivers(t, d, r, "e2e:")
	byDriver := map[string]string{} // driver → id of a job it enqueued

	for _, de := range envs {
		t.Run(de.name, func(t *testing.T) {
			env, q := de.env, "q-"+de.name

			j := jobJSON(t, env, "jobs", "enqueue", "ping", "--queue", q)
			if j.Status != queue.StatusPending || j.Source != queue.SourceCLI || j.Queue != q || j.Type != "ping" {
				t.Fatalf("enqueued %+v, want a pending ping in %s with source cli", j, q)
			}
			byDriver[de.name] = j.ID
			if got := jobJSON(t, env, "jobs", "get", j.ID); got.ID != j.ID || got.Status != queue.StatusPending {
				t.Errorf("get: %+v, want %s pending", got, j.ID)
			}

			// list: piped rows, the new job among the pending ones of q.
			rows := strings.Split(strings.TrimSpace(mustCLI(t, env, "jobs", "list", "--queue", q, "--status", "pending")), "\n")
			if len(rows) != 1 || !strings.HasPrefix(rows[0], j.ID+"\t"+q+"\tping\tpending\t0\tcli\t") {
				t.Errorf("list rows %q, want one row of %s", rows, j.ID)
			}
			var listed []queue.Job
			if err := json.Unmarshal([]byte(mustCLI(t, env, "jobs", "list", "--queue", q, "-o", "json")), &listed); err != nil || len(listed) != 1 {
				t.Errorf("list -o json: %v, %d jobs, want 1", err, len(listed))
			}

			done := jobJSON(t, env, "jobs", "run", j.ID)
			if done.Status != queue.StatusSucceeded || string(done.Result) != `"pong"` || done.Attempts != 1 {
				t.Errorf("run: %+v, want succeeded with \"pong\" after 1 attempt", done)
			}

			// A job delayed by 1ms is scheduled until a tick promotes it; in
			// manual mode nothing else does, so the tick moves exactly it.
			id := strings.TrimSpace(mustCLI(t, env, "jobs", "enqueue", "echo", "--payload", `{"x":1}`, "--queue", q, "--delay", "1ms"))
			if got := jobJSON(t, env, "jobs", "get", id); got.Status != queue.StatusScheduled {
				t.Fatalf("delayed job is %s, want scheduled", got.Status)
			}
			time.Sleep(5 * time.Millisecond)
			var tick TickView
			if err := json.Unmarshal([]byte(mustCLI(t, env, "jobs", "tick", "-o", "json")), &tick); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(TickView{Scheduled: 1}, tick); diff != "" {
				t.Errorf("tick (-want +got)\n%s", diff)
			}
			next := jobJSON(t, env, "jobs", "run", "--next", "--queue", q)
			if next.ID != id || next.Status != queue.StatusSucceeded || compactJSON(t, next.Result) != `{"x":1}` {
				t.Errorf("run --next: %+v, want %s succeeded with its payload", next, id)
			}
			wantFail(t, env, ExitFailed, "no pending job", "jobs", "run", "--next", "--queue", q)

			// fail → dead; requeue, cancel, a second cancel conflicts.
			fid := strings.TrimSpace(mustCLI(t, env, "jobs", "enqueue", "fail", "--max-retries", "0", "--queue", q))
			if got := jobJSON(t, env, "jobs", "run", fid); got.Status != queue.StatusDead || got.LastError == "" {
				t.Errorf("run fail: %+v, want dead with its error", got)
			}
			if got := jobJSON(t, env, "jobs", "requeue", fid); got.Status != queue.StatusPending {
				t.Errorf("requeue: %s, want pending", got.Status)
			}
			if got := jobJSON(t, env, "jobs", "cancel", fid); got.Status != queue.StatusCancelled {
				t.Errorf("cancel: %s, want cancelled", got.Status)
			}
			wantFail(t, env, ExitFailed, fid, "jobs", "cancel", fid)
			// Completion offers the cancelled job to requeue, not to cancel.
			if out := mustCLI(t, env, "__complete", "jobs", "requeue", ""); !strings.Contains(out, fid+"\tfail cancelled\n") {
				t.Errorf("requeue completion %q, want %s", out, fid)
			}
			if out := mustCLI(t, env, "__complete", "jobs", "cancel", ""); strings.Contains(out, fid) {
				t.Errorf("cancel completion %q offers the cancelled %s", out, fid)
			}
			wantFail(t, env, ExitFailed, "not found", "jobs", "get", "no-such-job")

			// Bad input: exit 2, nothing stored.
			wantFail(t, env, ExitUsage, "unknown job type", "jobs", "enqueue", "nope", "--queue", q)
			wantFail(t, env, ExitUsage, "not valid JSON", "jobs", "enqueue", "echo", "--payload", `{"x":`, "--queue", q)
			wantFail(t, env, ExitUsage, "payload", "jobs", "enqueue", "sleep", "--payload", `{"ms":"long"}`, "--queue", q)
			wantFail(t, env, ExitUsage, "queue", "jobs", "enqueue", "ping", "--queue", "no spaces")
			// Out of the queue's bounds: refused naming the flag, by either driver.
			wantFail(t, env, ExitUsage, "--delay must be between 0 and 8760h", "jobs", "enqueue", "ping", "--delay", "87600h", "--queue", q)
			wantFail(t, env, ExitUsage, "--max-retries must be between 0 and 100", "jobs", "enqueue", "ping", "--max-retries", "99999999999", "--queue", q)
			// A payload the API's 1 MiB body cannot carry is refused over
			// Redis too: same results either way.
			big := filepath.Join(t.TempDir(), "big.json")
			if err := os.WriteFile(big, []byte(`"`+strings.Repeat("x", 1<<20)+`"`), 0o600); err != nil {
				t.Fatal(err)
			}
			wantFail(t, env, ExitUsage, "--payload is too large", "jobs", "enqueue", "echo", "--payload", "@"+big, "--queue", q)
			if n := strings.Count(mustCLI(t, env, "jobs", "list", "--queue", q), "\n"); n != 3 {
				t.Errorf("queue %s holds %d jobs, want the 3 enqueued well", q, n)
			}
		})
	}

	// Same results either way: each job reads the same over both drivers.
	for _, id := range byDriver {
		var outs []string
		for _, de := range envs {
			outs = append(outs, mustCLI(t, de.env, "jobs", "get", id, "-o", "json"))
		}
		if diff := cmp.Diff(outs[0], outs[1]); diff != "" {
			t.Errorf("job %s over api and redis (-api +redis)\n%s", id, diff)
		}
	}
}

// TestE2EDaemonRunsJobsFromBothDrivers checks that a daemon's workers run
// jobs enqueued over its API and straight over Redis alike.
func TestE2EDaemonRunsJobsFromBothDrivers(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "2")
	for _, de := range drivers(t, d, r, "refrakt:") {
		t.Run(de.name, func(t *testing.T) {
			id := strings.TrimSpace(mustCLI(t, de.env, "jobs", "enqueue", "echo", "--payload", `"hi `+de.name+`"`))
			deadline := time.Now().Add(5 * time.Second)
			for {
				j := jobJSON(t, de.env, "jobs", "get", id)
				if j.Status == queue.StatusSucceeded {
					if want := `"hi ` + de.name + `"`; string(j.Result) != want || j.Source != queue.SourceCLI {
						t.Errorf("job %+v, want result %s and source cli", j, want)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("job %s still %s after 5s\n%s", id, j.Status, d.Log())
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestE2ETickNamesDeadJobs: `jobs tick -o json` names the jobs the tick
// made dead (a daemon killed during their last attempt), over both drivers
// alike.
func TestE2ETickNamesDeadJobs(t *testing.T) {
	r := redistest.Start(t)
	env := []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=e2e:"}
	d := startDaemon(t, env, "--workers", "0")
	for _, de := range drivers(t, d, r, "e2e:") {
		t.Run(de.name, func(t *testing.T) {
			crashing := startDaemon(t, append(slices.Clone(env), "JOB_LEASE=1s"))
			q := "q-" + de.name
			cli := map[string]string{"REFRAKT_SERVER": crashing.URL, "REFRAKT_TOKEN": crashing.Token, "XDG_STATE_HOME": t.TempDir()}
			id := strings.TrimSpace(mustCLI(t, cli, "jobs", "enqueue", "sleep", "--payload", `{"ms":60000}`, "--max-retries", "0", "--queue", q))
			for deadline := time.Now().Add(10 * time.Second); jobJSON(t, de.env, "jobs", "get", id).Status != queue.StatusRunning; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("job %s did not start in 10 s\n%s", id, crashing.Log())
				}
			}
			crashing.Signal(syscall.SIGKILL)
			crashing.Wait(10 * time.Second)
			var tick TickView
			for deadline := time.Now().Add(10 * time.Second); tick.RecoveredDead == 0; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("no tick made job %s dead in 10 s", id)
				}
				if err := json.Unmarshal([]byte(mustCLI(t, de.env, "jobs", "tick", "-o", "json")), &tick); err != nil {
					t.Fatal(err)
				}
			}
			want := TickView{RecoveredDead: 1, Dead: []queue.DeadJob{{ID: id, Queue: q, Type: "sleep", Attempts: 1, LastError: "lease expired"}}}
			if diff := cmp.Diff(want, tick); diff != "" {
				t.Errorf("tick (-want +got)\n%s", diff)
			}
		})
	}
}

// TestE2EExitCodes runs the real binary for each exit code, over both
// drivers where the driver matters.
func TestE2EExitCodes(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "0")
	bin := daemontest.Binary(t)
	dead := daemontest.ClosedAddr(t)
	state := t.TempDir()
	base := []string{"PATH=/usr/bin:/bin", "HOME=" + state, "XDG_STATE_HOME=" + state}
	api := append(slices.Clone(base), "REFRAKT_SERVER="+d.URL, "REFRAKT_TOKEN="+d.Token)
	direct := append(slices.Clone(base), "REFRAKT_REDIS="+r.URL())
	badState := t.TempDir() // holds a token file with a token the daemon rejects
	badTokenFile := writeTokenFile(t, badState, "not-the-token")
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		want     string // in stdout for 0, in the one line of stderr otherwise
	}{
		{"ok over api", api, []string{"jobs", "list"}, ExitOK, ""},
		{"ok over redis", direct, []string{"limits", "get", "rl-test"}, ExitOK, "rl-test"},
		{"not found over api", api, []string{"jobs", "get", "missing"}, ExitFailed, "missing"},
		{"not found over redis", direct, []string{"jobs", "requeue", "missing"}, ExitFailed, "missing"},
		{"wrong token", append(slices.Clone(base), "REFRAKT_SERVER="+d.URL, "REFRAKT_TOKEN=wrong"), []string{"jobs", "list"}, ExitFailed, "--token"},
		{"bad payload over api", api, []string{"jobs", "enqueue", "echo", "--payload", "{"}, ExitUsage, "not valid JSON"},
		{"unknown type over redis", direct, []string{"jobs", "enqueue", "nope"}, ExitUsage, "unknown job type"},
		{"negative capacity", direct, []string{"limits", "set", "run", "--capacity", "-5", "--window", "1m"}, ExitUsage, "--capacity"},
		{"unknown command", direct, []string{"jobs", "explode"}, ExitUsage, "unknown command"},
		{"daemon down", append(slices.Clone(base), "REFRAKT_SERVER=http://"+dead, "REFRAKT_TOKEN=x"), []string{"jobs", "list"}, ExitUnreachable, "cannot reach http://" + dead},
		{"redis down", append(slices.Clone(base), "REFRAKT_REDIS=redis://"+dead), []string{"limits", "get"}, ExitUnreachable, "cannot reach redis://" + dead},
		// A database the server has not is a mistake in the URL, not an outage.
		{"redis database out of range", append(slices.Clone(base), "REFRAKT_REDIS="+r.URL()+"/99"), []string{"jobs", "list"}, ExitUsage,
			"--redis " + r.URL() + "/99: this server has no such database (ERR DB index is out of range)"},
		// REDIS_CLUSTER=true against a single server is a bad setting, not an outage.
		{"redis cluster forced on a single server", append(slices.Clone(base), "REFRAKT_REDIS="+r.URL()+"/0", "REDIS_CLUSTER=true"), []string{"jobs", "list"}, ExitUsage,
			"--redis " + r.URL() + "/0: REDIS_CLUSTER=true, but this server is a single Redis, not a Redis Cluster"},
		// The token file the daemon rejects is named: no flag or variable gave it.
		{"wrong token from the token file", append([]string{"PATH=/usr/bin:/bin", "HOME=" + badState, "XDG_STATE_HOME=" + badState}, "REFRAKT_SERVER="+d.URL),
			[]string{"jobs", "list"}, ExitFailed, "the token was read from the token file " + badTokenFile + " and the daemon rejected it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // separate processes; the slow ones are the unreachable
			code, out, errOut := runBinary(t, bin, tt.env, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.wantCode, errOut)
			}
			if tt.wantCode == ExitOK {
				if errOut != "" || !strings.Contains(out, tt.want) {
					t.Errorf("stdout %q stderr %q, want stdout containing %q and no stderr", out, errOut, tt.want)
				}
				return
			}
			if s := errOut; strings.Count(s, "\n") != 1 || !strings.HasPrefix(s, "refrakt: ") || !strings.Contains(s, tt.want) {
				t.Errorf("stderr %q, want one line containing %q", s, tt.want)
			}
		})
	}
}

// rlTest calls the daemon's rate-limited probe as client ip and returns
// the status.
func rlTest(t *testing.T, d *daemontest.Daemon, ip string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, d.URL+"/api/dev/rl-test", nil)
	req.Header.Set("Authorization", "Bearer "+d.Token)
	req.Header.Set("CF-Connecting-IP", ip)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// limitsJSON runs `limits get -o json` and decodes it.
func limitsJSON(t *testing.T, env map[string]string, args ...string) LimitsView {
	t.Helper()
	var v LimitsView
	out := mustCLI(t, env, append(append([]string{"limits", "get"}, args...), "-o", "json")...)
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("limits get -o json: %v\n%s", err, out)
	}
	return v
}

// awaitOverride lists the overrides of filter over env until the one of
// target is present (want true) or gone (want false): a change made over
// another driver reaches a daemon within 1 s, so this waits up to 5 s.
func awaitOverride(t *testing.T, env map[string]string, filter, target string, want bool) OverrideView {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		o, ok := findOverride(limitsJSON(t, env, filter), target)
		if ok == want {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("override %s present=%v after 5s, want %v", target, ok, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func findOverride(v LimitsView, target string) (OverrideView, bool) {
	for _, o := range v.Overrides {
		if o.Target == target {
			return o, true
		}
	}
	return OverrideView{}, false
}

// TestE2ELimits sets overrides over one driver and lists them, sees them
// enforced by the daemon, resets buckets and removes the overrides over the
// other; and checks bad targets over both.
func TestE2ELimits(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "0")
	envs := drivers(t, d, r, "refrakt:")
	pairs := [][2]driverEnv{{envs[1], envs[0]}, {envs[0], envs[1]}} // setter, other
	for i, pair := range pairs {
		set, other := pair[0], pair[1]
		t.Run("set over "+set.name+", used over "+other.name, func(t *testing.T) {
			ip := "203.0.113." + string(rune('1'+i))
			target := "rl-test:ip:" + ip
			var o OverrideView
			if err := json.Unmarshal([]byte(mustCLI(t, set.env, "limits", "set", target, "--capacity", "1", "--window", "1m", "-o", "json")), &o); err != nil {
				t.Fatal(err)
			}
			if o.Target != target || o.Capacity != 1 || o.WindowSeconds != 60 || o.ExpiresAt != nil {
				t.Errorf("set answered %+v, want %s at 1 per 60s, no expiry", o, target)
			}
			listed := awaitOverride(t, other.env, "rl-test", target, true)
			if listed.Capacity != 1 || listed.WindowSeconds != 60 || listed.Mode != "enforce" || listed.Origin != "cli" {
				t.Errorf("listed over %s: %+v, want capacity 1 per 60s, enforced, origin cli", other.name, listed)
			}

			// Enforced by the daemon within 1 s (bounded generously here):
			// one request passes, the next is limited.
			deadline := time.Now().Add(5 * time.Second)
			for {
				mustCLI(t, other.env, "limits", "reset", target)
				first, second := rlTest(t, d, ip), rlTest(t, d, ip)
				if first == http.StatusOK && second == http.StatusTooManyRequests {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("override not enforced after 5s: %d then %d", first, second)
				}
				time.Sleep(50 * time.Millisecond)
			}
			mustCLI(t, other.env, "limits", "reset", target)
			if got := rlTest(t, d, ip); got != http.StatusOK {
				t.Errorf("after reset: %d, want 200", got)
			}

			mustCLI(t, other.env, "limits", "unset", target)
			awaitOverride(t, set.env, "rl-test", target, false)
			wantFail(t, set.env, ExitFailed, target, "limits", "unset", target)

			// Shadow with a TTL: listed with its mode and expiry.
			shadow := "run:ip:" + ip
			mustCLI(t, set.env, "limits", "set", shadow, "--capacity", "2", "--window", "10s", "--ttl", "1h", "--shadow")
			got := awaitOverride(t, other.env, "run:ip", shadow, true)
			if got.Mode != "shadow" || got.ExpiresAt == nil || time.Until(*got.ExpiresAt) < 50*time.Minute {
				t.Errorf("listed %+v, want a shadow override expiring in about 1h", got)
			}
			mustCLI(t, other.env, "limits", "unset", shadow)
		})
	}
	for _, de := range envs {
		t.Run("bad input over "+de.name, func(t *testing.T) {
			wantFail(t, de.env, ExitUsage, "nope", "limits", "set", "nope", "--capacity", "1", "--window", "1m")
			wantFail(t, de.env, ExitUsage, "planet", "limits", "set", "run:planet", "--capacity", "1", "--window", "1m")
			wantFail(t, de.env, ExitUsage, "run:ip", "limits", "reset", "run:ip")
			wantFail(t, de.env, ExitUsage, "nope", "limits", "get", "nope")
			wantFail(t, de.env, ExitUsage, "nope", "limits", "unset", "nope:ip")
		})
	}
}

// TestE2EDirectOnCluster runs the direct driver against a Redis Cluster,
// detected from one node's URL as the daemon detects it.
func TestE2EDirectOnCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	state := t.TempDir()
	env := map[string]string{"REFRAKT_REDIS": c.URL(), "XDG_STATE_HOME": state, "HOME": state}
	ids := map[string]bool{}
	for _, q := range []string{"a", "b", "c", "d"} { // queues spread over the slots
		ids[strings.TrimSpace(mustCLI(t, env, "jobs", "enqueue", "ping", "--queue", q))] = true
	}
	var listed []queue.Job
	if err := json.Unmarshal([]byte(mustCLI(t, env, "jobs", "list", "-o", "json")), &listed); err != nil {
		t.Fatal(err)
	}
	for _, j := range listed {
		delete(ids, j.ID)
	}
	if len(ids) != 0 {
		t.Errorf("jobs %v not listed", ids)
	}
	for range 4 {
		if j := jobJSON(t, env, "jobs", "run", "--next"); j.Status != queue.StatusSucceeded {
			t.Errorf("run --next: %s, want succeeded", j.Status)
		}
	}
	wantFail(t, env, ExitFailed, "no pending job", "jobs", "run", "--next")

	mustCLI(t, env, "limits", "set", "run:ip:198.51.100.4", "--capacity", "7", "--window", "1m")
	if o, ok := findOverride(limitsJSON(t, env), "run:ip:198.51.100.4"); !ok || o.Capacity != 7 {
		t.Errorf("override %+v (found %v), want capacity 7", o, ok)
	}
	mustCLI(t, env, "limits", "reset", "run:ip:198.51.100.4")
	mustCLI(t, env, "limits", "unset", "run:ip:198.51.100.4")
}

// TestE2EQueueBound: with the daemon's QUEUE_MAX_QUEUES reached, the public
// POST /run refuses a new queue, while `jobs enqueue` (the operator, over the
// API and over Redis, whatever the CLI's own environment says) makes it,
// after which POST /run takes jobs in it.
func TestE2EQueueBound(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=qb:", "QUEUE_MAX_QUEUES=1"}, "--workers", "0")
	envs := drivers(t, d, r, "qb:")
	envs[1].env["QUEUE_MAX_QUEUES"] = "1"
	run := func(q string) int {
		t.Helper()
		resp, err := http.Post(d.URL+"/run", "application/json", strings.NewReader(`{"type":"ping","queue":"`+q+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := run("only"); code != http.StatusAccepted {
		t.Fatalf("POST /run in the first queue: %d", code)
	}
	for _, de := range envs {
		t.Run(de.name, func(t *testing.T) {
			q := "ops-" + de.name
			if code := run(q); code != http.StatusBadRequest {
				t.Fatalf("POST /run in a new queue beyond the bound: %d, want 400", code)
			}
			if j := jobJSON(t, de.env, "jobs", "enqueue", "ping", "--queue", q); j.Queue != q {
				t.Fatalf("jobs enqueue --queue %s: stored in %q", q, j.Queue)
			}
			if code := run(q); code != http.StatusAccepted {
				t.Errorf("POST /run in the queue the operator made: %d, want 202", code)
			}
		})
	}
}

// TestE2ERemoveQueue: `refrakt jobs remove-queue` over both drivers against
// a daemon on Redis: refused (exit 1, naming the jobs) while the queue holds
// one to run, then removed with its finished jobs, then unknown; a bad name
// is a usage error. Over the API, the daemon's QUEUE_MAX_QUEUES place is
// free at once: a public job may make a new queue.
func TestE2ERemoveQueue(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=rq:", "QUEUE_MAX_QUEUES=1"}, "--workers", "0")
	envs := drivers(t, d, r, "rq:")
	for _, de := range envs {
		t.Run(de.name, func(t *testing.T) {
			q := "junk-" + de.name
			j := jobJSON(t, de.env, "jobs", "enqueue", "ping", "--queue", q)
			wantFail(t, de.env, ExitFailed, "1 pending", "jobs", "remove-queue", q)
			if got := jobJSON(t, de.env, "jobs", "get", j.ID); got.Status != queue.StatusPending {
				t.Fatalf("the job after a refused removal: %s", got.Status)
			}
			mustCLI(t, de.env, "jobs", "cancel", j.ID)
			out := mustCLI(t, de.env, "jobs", "remove-queue", q, "-o", "json")
			if got, want := compactJSON(t, []byte(out)), `{"queue":"`+q+`","removed_jobs":1}`; got != want {
				t.Errorf("remove-queue -o json: %s, want %s", got, want)
			}
			wantFail(t, de.env, ExitFailed, "not found", "jobs", "get", j.ID)
			wantFail(t, de.env, ExitFailed, "not found", "jobs", "remove-queue", q)
			wantFail(t, de.env, ExitUsage, `queue "a b": want 1-64 letters`, "jobs", "remove-queue", "a b")
		})
	}
	api := envs[0].env
	run := func(q string) (int, string) {
		t.Helper()
		resp, err := http.Post(d.URL+"/run", "application/json", strings.NewReader(`{"type":"ping","queue":"`+q+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var j queue.Job
		_ = json.NewDecoder(resp.Body).Decode(&j)
		return resp.StatusCode, j.ID
	}
	code, id := run("first")
	if code != http.StatusAccepted {
		t.Fatalf("POST /run in the first queue: %d", code)
	}
	if code, _ := run("second"); code != http.StatusBadRequest {
		t.Fatalf("POST /run in a second queue, beyond the bound: %d, want 400", code)
	}
	mustCLI(t, api, "jobs", "cancel", id)
	mustCLI(t, api, "jobs", "remove-queue", "first")
	if code, _ := run("second"); code != http.StatusAccepted {
		t.Errorf("POST /run in a new queue once the other is removed: %d, want 202", code)
	}
}

// TestE2ELimitsFromTheDaemons: `limits get` over Redis shows the limits the
// daemons on that Redis enforce, not the CLI's own RATE_LIMIT_* environment:
// byte for byte what it shows over the daemon's API, as rows and as JSON.
// With no daemon's limits on that Redis, it shows its own environment's.
func TestE2ELimitsFromTheDaemons(t *testing.T) {
	r := redistest.Start(t)
	state := t.TempDir()
	alone := map[string]string{"REFRAKT_REDIS": r.URL(), "REFRAKT_PREFIX": "lim:", "RATE_LIMIT_RUN_BURST": "4", "XDG_STATE_HOME": state, "HOME": state}
	if v := limitsJSON(t, alone, "run"); v.Limits[0].Burst != 4 || !v.Enabled {
		t.Fatalf("no daemon yet: %+v, want run's burst 4 from the CLI's environment, enabled", v)
	}

	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=lim:", "RATE_LIMIT_ENABLED=false", "RATE_LIMIT_PREMIUM_MULTIPLIER=2"},
		"--workers", "0", "--rate-limit-run-burst", "7", "--rate-limit-assistant-per-minute", "11")
	envs := drivers(t, d, r, "lim:")
	envs[1].env["RATE_LIMIT_RUN_BURST"] = "4" // the CLI's own setting, which the daemon's overrules
	// Set over Redis: the daemon lists an override it set itself with its
	// created_at to the nanosecond until it reloads it from Redis (ms).
	mustCLI(t, envs[1].env, "limits", "set", "run:ip:198.51.100.9", "--capacity", "2", "--window", "1m")

	for _, args := range [][]string{
		{"limits", "get"},
		{"limits", "get", "-o", "json"},
		{"limits", "get", "run", "-o", "json"},
		{"limits", "get", "assistant"},
	} {
		// The daemon publishes its limits in the background as it starts,
		// and sees the override within a second.
		deadline := time.Now().Add(5 * time.Second)
		api, direct := mustCLI(t, envs[0].env, args...), mustCLI(t, envs[1].env, args...)
		for direct != api && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			api, direct = mustCLI(t, envs[0].env, args...), mustCLI(t, envs[1].env, args...)
		}
		if diff := cmp.Diff(api, direct); diff != "" {
			t.Errorf("refrakt %s over api and redis (-api +redis)\n%s", strings.Join(args, " "), diff)
		}
	}
	want := LimitsView{Enabled: false, Overrides: []OverrideView{}, Limits: []LimitView{
		{Name: "run", Scopes: []string{"ip", "user"}, Burst: 7, Rate: 30, WindowSeconds: 60, PremiumBurst: 14, PremiumRate: 60},
		{Name: "assistant", Scopes: []string{"ip", "user"}, Burst: 11, Rate: 11, WindowSeconds: 60, PremiumBurst: 22, PremiumRate: 22},
	}}
	got := limitsJSON(t, envs[1].env)
	got.Limits, got.Overrides = got.Limits[:2], []OverrideView{}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("limits over redis (-want +got)\n%s", diff)
	}

	// The daemon gone, its limits stay until their TTL ends, then the CLI's
	// environment speaks again.
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(15 * time.Second); code != 0 {
		t.Fatalf("daemon exit %d\n%s", code, d.Log())
	}
	if ttl, err := redistest.Do(r.Addr(), "PTTL", "lim:rl:limits"); err != nil || ttl == "-1" || ttl == "-2" {
		t.Fatalf("PTTL of the published limits: %q %v, want a TTL", ttl, err)
	}
	if _, err := redistest.Do(r.Addr(), "DEL", "lim:rl:limits"); err != nil { // as the TTL would
		t.Fatal(err)
	}
	if v := limitsJSON(t, envs[1].env, "run"); v.Limits[0].Burst != 4 || !v.Enabled {
		t.Errorf("no daemon left: %+v, want run's burst 4 from the CLI's environment, enabled", v)
	}
}

// TestE2EInterruptedRunOverRedis: Ctrl-C on `jobs run ID --redis` (the
// handler runs in the CLI) hands the job back to pending, uncounted, and
// exits 1 saying so; it failed the job (dead with no retries) and exited 3
// as if Redis could not be reached.
func TestE2EInterruptedRunOverRedis(t *testing.T) {
	r := redistest.Start(t)
	c := interruptRun(t, map[string]string{"REFRAKT_REDIS": r.URL()}, `{"ms":10000}`)
	if c.code != ExitFailed || !strings.Contains(c.stderr, "handed back to pending") {
		t.Fatalf("interrupted run: exit %d, stderr %q; want exit %d saying the job was handed back", c.code, c.stderr, ExitFailed)
	}
	if got := c.get(); got.Status != queue.StatusPending || got.Attempts != 0 {
		t.Fatalf("after the interrupted run: %s after %d attempts; want pending with 0", got.Status, got.Attempts)
	}
}

// TestE2EInterruptedRunOverDaemon: Ctrl-C on `jobs run ID` through a daemon
// leaves the run to the daemon (it goes on and is recorded) and says so; it
// printed "context canceled".
func TestE2EInterruptedRunOverDaemon(t *testing.T) {
	r := redistest.Start(t)
	d := startDaemon(t, []string{"QUEUE_URL=" + r.URL()}, "--workers", "0")
	c := interruptRun(t, map[string]string{"REFRAKT_SERVER": d.URL, "REFRAKT_TOKEN": d.Token}, `{"ms":4000}`)
	if c.code != ExitFailed || !strings.Contains(c.stderr, "the daemon goes on running job "+c.id) {
		t.Fatalf("interrupted run: exit %d, stderr %q; want exit %d saying the daemon goes on", c.code, c.stderr, ExitFailed)
	}
	for deadline := time.Now().Add(20 * time.Second); c.get().Status != queue.StatusSucceeded; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's run did not finish: %+v", c.get())
		}
	}
}

// interrupted is a `jobs run ID` interrupted by interruptRun.
type interrupted struct {
	id     string
	code   int
	stderr string
	get    func() queue.Job // the job, read with the same driver
}

// interruptRun enqueues a sleep job with payload through the driver that
// env names, starts `jobs run ID` in a process of its own, and sends it
// os.Interrupt once the job is running.
func interruptRun(t *testing.T, env map[string]string, payload string) interrupted {
	t.Helper()
	j := jobJSON(t, env, "jobs", "enqueue", "sleep", "--payload", payload, "--max-retries", "0")
	get := func() queue.Job { return jobJSON(t, env, "jobs", "get", j.ID) }
	state := t.TempDir()
	cmd := exec.Command(daemontest.Binary(t), "jobs", "run", j.ID)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + state, "XDG_STATE_HOME=" + state}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); get().Status != queue.StatusRunning; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("the job never ran")
		}
	}
	_ = cmd.Process.Signal(os.Interrupt)
	code := 0
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return interrupted{id: j.ID, code: code, stderr: stderr.String(), get: get}
}

// TestE2EDaemonWithoutBackend: a daemon that is up but has not connected
// its backend answers 503; the CLI exits 3 with one line naming the daemon
// (README: for exit 3 "the message names the address"), as it does for a
// daemon it cannot reach.
func TestE2EDaemonWithoutBackend(t *testing.T) {
	d := daemontest.Start(t, []string{"QUEUE_URL=redis://" + daemontest.ClosedAddr(t) + "/0"})
	d.WaitHTTP("/readyz", http.StatusServiceUnavailable, 15*time.Second)
	state := t.TempDir()
	cmd := exec.Command(daemontest.Binary(t), "jobs", "list", "--server", d.URL, "--token", d.Token)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + state, "XDG_STATE_HOME=" + state}
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitUnreachable {
		t.Fatalf("exit: %v, want %d; stderr %q", err, ExitUnreachable, errOut.String())
	}
	if s := errOut.String(); strings.Count(s, "\n") != 1 || !strings.HasPrefix(s, "refrakt: "+d.URL+": backend not ") {
		t.Errorf("stderr %q, want one line starting %q", s, "refrakt: "+d.URL+": backend not ")
	}
}
