package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// serveToExit runs the real binary's `serve --addr 127.0.0.1:0 args…` with
// env added to a minimal environment, for a start-up that must end by
// itself: it returns the exit code and stderr, and fails the test (after
// killing the daemon by its pid) when it still runs after within.
func serveToExit(t *testing.T, within time.Duration, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := daemontest.Command(t, env, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := time.AfterFunc(within, func() { _ = cmd.Process.Kill() })
	err := cmd.Wait()
	if !kill.Stop() {
		t.Fatalf("serve %v still ran after %s (killed); stderr:\n%s", args, within, stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stderr.String()
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestServeRefusesADatabaseTheServerLacks (review lifecycle #3): a QUEUE_URL
// naming a database index the server lacks is a bad setting, exit 2 at
// start-up with the CLI's words; it was retried for ever, logged as "backend
// not reachable".
func TestServeRefusesADatabaseTheServerLacks(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	for _, cluster := range []string{"auto", "false"} {
		t.Run("REDIS_CLUSTER="+cluster, func(t *testing.T) {
			code, stderr := serveToExit(t, 10*time.Second, []string{"REDIS_CLUSTER=" + cluster}, "--redis", r.URL()+"/99")
			last := lastLine(stderr)
			if code != 2 || !strings.HasPrefix(last, "refrakt: QUEUE_URL") || !strings.Contains(last, `this server has no such database`) ||
				!strings.Contains(last, `pick a number below its "databases" setting, 0-15 by default`) || strings.Contains(stderr, "not reachable") {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and a last line naming QUEUE_URL and the missing database, no \"not reachable\"", code, stderr)
			}
		})
	}
}

// TestServeRefusesADatabaseOfACluster (a code review's test): a Redis
// Cluster has database 0 only. Detected (auto), the node answered "SELECT is
// not allowed in cluster mode", retried for ever as not reachable; declared
// (true), the cluster client ignored the number. Both exit 2 now.
func TestServeRefusesADatabaseOfACluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	c.WaitOK(t)
	url := "redis://" + c.Seeds()[0] + "/1"
	for _, cluster := range []string{"auto", "true"} {
		t.Run("REDIS_CLUSTER="+cluster, func(t *testing.T) {
			code, stderr := serveToExit(t, 10*time.Second, []string{"REDIS_CLUSTER=" + cluster}, "--redis", url)
			last := lastLine(stderr)
			if code != 2 || !strings.HasPrefix(last, "refrakt: QUEUE_URL") || !strings.Contains(last, "a Redis Cluster has database 0 only") ||
				strings.Contains(stderr, "not reachable") {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and a last line naming QUEUE_URL and the cluster's database 0, no \"not reachable\"", code, stderr)
			}
		})
	}
}

// TestServeRefusesClusterTrueOnASingleServer (review des28 LOW-3):
// REDIS_CLUSTER=true against a single server is a bad setting, exit 2 at
// start-up naming it; the server's "cluster support disabled" was retried
// for ever and logged as "backend not reachable".
func TestServeRefusesClusterTrueOnASingleServer(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	code, stderr := serveToExit(t, 10*time.Second, []string{"REDIS_CLUSTER=true"}, "--redis", r.URL()+"/0")
	last := lastLine(stderr)
	if code != 2 || !strings.HasPrefix(last, "refrakt: REDIS_CLUSTER: true, but this server is a single Redis, not a Redis Cluster") ||
		!strings.Contains(last, "cluster support disabled") || !strings.Contains(last, r.Addr()) || strings.Contains(stderr, "not reachable") {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and a last line naming REDIS_CLUSTER and the server, no \"not reachable\"", code, stderr)
	}
}

// TestNotReachableLoggedOncePerInterval (review lifecycle #11): while Redis
// cannot be reached the daemon retries, and says so once per 10 s with
// left_out, as README promises of backend trouble; it logged every attempt
// (a failed dial takes about 2 s here, so 3 or more in 6 s; then one each
// 5 s for ever).
func TestNotReachableLoggedOncePerInterval(t *testing.T) {
	t.Parallel()
	dead := daemontest.ClosedAddr(t)
	d := daemontest.Start(t, []string{"QUEUE_URL=redis://" + dead + "/0"})
	time.Sleep(6 * time.Second)
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, d.Log())
	}
	out := d.Log()
	lines := grep(out, `msg="backend not reachable; retrying"`)
	if n := strings.Count(out, `msg="backend not reachable; retrying"`); n != 1 || !strings.Contains(lines, "level=WARN") || !strings.Contains(lines, "left_out=0") {
		t.Errorf("%d lines \"backend not reachable; retrying\" in 6 s, want 1 warning with left_out; log:\n%s", n, out)
	}
}

// TestUnknownEnvWarned (review lifecycle #13): a REFRAKT_* variable nothing
// reads is warned about once at start-up, by name with the setting it
// likely stands for, never with its value; known ones are not. They were
// ignored without a word (REFRAKT_WORKERS=9 ran 4 workers).
func TestUnknownEnvWarned(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, []string{"REFRAKT_WORKERS=9", "REFRAKT_LOG_LEVEL=debug", "REFRAKT_DEVELOPER_TOKN=Sekr3tValue99",
		"REFRAKT_SERVER=http://127.0.0.1:1", "REFRAKT_PREFIX=x:"})
	out := d.Log()
	for _, want := range []string{
		`level=WARN msg="unknown environment variable, ignored" name=REFRAKT_DEVELOPER_TOKN did_you_mean=REFRAKT_DEVELOPER_TOKEN`,
		`level=WARN msg="unknown environment variable, ignored" name=REFRAKT_LOG_LEVEL did_you_mean=LOG_LEVEL`,
		`level=WARN msg="unknown environment variable, ignored" name=REFRAKT_WORKERS did_you_mean=WORKER_CONCURRENCY`,
	} {
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("%d lines %s, want 1", n, want)
		}
	}
	if n := strings.Count(out, "unknown environment variable"); n != 3 || strings.Contains(out, "Sekr3tValue99") {
		t.Errorf("%d warnings, want 3 and no value; log:\n%s", n, out)
	}
}

// TestListenErrorSaidOnce (review lifecycle #14): a listener that cannot
// bind is one line naming the address once; it read "listen on X: listen
// tcp X: bind: address already in use".
func TestListenErrorSaidOnce(t *testing.T) {
	t.Parallel()
	addr := daemontest.TakenAddr(t)
	code, stderr := serveToExit(t, 10*time.Second, nil, "--addr", addr)
	want := "refrakt: listen on " + addr + ": bind: address already in use"
	if code != 1 || strings.TrimSpace(stderr) != want {
		t.Errorf("exit %d, stderr %q; want exit 1 and the one line %q", code, stderr, want)
	}
}

// TestRiskySettingsWarned (review lifecycle #12): a trusted proxy range of
// every address and a token short enough to guess start, with a warning
// naming the setting (never the token); they started without a word.
func TestRiskySettingsWarned(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, []string{"TRUSTED_PROXIES=0.0.0.0/0", "REFRAKT_OPERATOR_TOKEN=op-Sekr3t"})
	out := d.Log()
	for _, want := range []string{
		`level=WARN msg="TRUSTED_PROXIES trusts every address: any client can set the identity and tier headers" range=0.0.0.0/0`,
		`level=WARN msg="a token shorter than 16 characters is easy to guess" setting=REFRAKT_OPERATOR_TOKEN length=9`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no line %s; log:\n%s", want, out)
		}
	}
	if strings.Contains(out, "op-Sekr3t") || strings.Contains(out, "setting=REFRAKT_DEVELOPER_TOKEN") {
		t.Errorf("a token's value, or the long developer token, in the log:\n%s", out)
	}
}

// TestListeningLineShowsEverySetting: the "listening" line carries every
// setting the daemon runs with, as given by flag or variable, with tokens
// as set and a Redis URL's password as xxxxx. It carried addr, backend,
// workers, rate_limit, prometheus and the tokens' presence only.
func TestListeningLineShowsEverySetting(t *testing.T) {
	t.Parallel()
	const secret = "Sekr3tPW"
	dead := daemontest.ClosedAddr(t)
	d := daemontest.Start(t, []string{"QUEUE_URL=redis://:" + secret + "@" + dead + "/0", "REFRAKT_OPERATOR_TOKEN=op-" + secret + "-0123456789", "JOB_HISTORY=17"},
		"--shutdown-timeout", "3s", "--trusted-proxies", "10.0.0.0/8")
	line := grep(d.Log(), "msg=listening")
	for _, a := range config.Default().LogValue().Group() {
		if !strings.Contains(line, " config."+a.Key+"=") {
			t.Errorf("the listening line lacks config.%s:\n%s", a.Key, line)
		}
	}
	for _, want := range []string{"config.shutdown_timeout=3s", "config.trusted_proxies=10.0.0.0/8", "config.job_history=17",
		"config.redis=redis://:xxxxx@" + dead + "/0", "config.operator_token=set", "config.developer_token=set", "config.backend=redis"} {
		if !strings.Contains(line, " "+want+" ") {
			t.Errorf("the listening line lacks %s:\n%s", want, line)
		}
	}
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, d.Log())
	}
	if strings.Contains(d.Log(), secret) {
		t.Errorf("a secret in the log:\n%s", d.Log())
	}
}

// TestFatalErrorIsJSONUnderJSONLogs: under LOG_FORMAT=json, an error that
// stops serve once its logger exists is one JSON record at level ERROR, the
// log's last, with the exit code unchanged; a log shipper reading JSON got
// the plain "refrakt: listen on …" line. A mistake in the settings that
// make the logger (LOG_FORMAT itself), and any other the settings table
// finds before the logger exists, stays the plain line.
func TestFatalErrorIsJSONUnderJSONLogs(t *testing.T) {
	t.Parallel()
	addr := daemontest.TakenAddr(t)
	jsonLogs := []string{"LOG_FORMAT=json"}
	for _, tt := range []struct {
		name  string
		env   []string
		args  []string
		code  int
		err   string // the ERROR record's err, or "" for a plain line
		plain string
	}{
		{name: "listen", env: jsonLogs, args: []string{"--addr", addr}, code: 1, err: "listen on " + addr + ": bind: address already in use"},
		{name: "bad URL found by the daemon", env: jsonLogs, args: []string{"--redis", "redis://127.0.0.1:bad"}, code: 2, err: `QUEUE_URL: `},
		{name: "bad log format", env: []string{"LOG_FORMAT=xml"}, code: 2, plain: `refrakt: LOG_FORMAT: "xml" must be text or json`},
		{name: "bad setting before the logger", env: jsonLogs, args: []string{"--workers", "-1"}, code: 2, plain: "refrakt: --workers: -1 must be between 0 and 1024"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stderr := serveToExit(t, 10*time.Second, tt.env, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if tt.plain != "" {
				if strings.TrimSpace(stderr) != tt.plain {
					t.Errorf("stderr %q, want the one line %q", stderr, tt.plain)
				}
				return
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			for _, l := range lines {
				if !json.Valid([]byte(l)) {
					t.Errorf("a line that is not JSON: %q; stderr:\n%s", l, stderr)
				}
			}
			var rec struct {
				Level    string `json:"level"`
				Msg      string `json:"msg"`
				Err      string `json:"err"`
				ExitCode int    `json:"exit_code"`
			}
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
				t.Fatalf("last line: %v; stderr:\n%s", err, stderr)
			}
			if rec.Level != "ERROR" || rec.Msg != "serve failed" || !strings.HasPrefix(rec.Err, tt.err) || rec.ExitCode != tt.code {
				t.Errorf("last record %+v; want level ERROR, msg \"serve failed\", err starting %q, exit_code %d", rec, tt.err, tt.code)
			}
			if n := strings.Count(stderr, `"level":"ERROR"`); n != 1 {
				t.Errorf("%d ERROR records, want 1; stderr:\n%s", n, stderr)
			}
		})
	}
}

// TestNoRangeTrustedProxiesWarnedAtStartUp: the real daemon, given
// TRUSTED_PROXIES=, (no range, so no peer trusted), starts with a warning
// naming the setting; it started without a word.
func TestNoRangeTrustedProxiesWarnedAtStartUp(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, []string{"TRUSTED_PROXIES=,"})
	want := `level=WARN msg="TRUSTED_PROXIES lists no range: no peer is trusted, loopback included (write none if that is meant)" setting=TRUSTED_PROXIES`
	if n := strings.Count(d.Log(), want); n != 1 {
		t.Errorf("%d lines %s, want 1; log:\n%s", n, want, d.Log())
	}
	if !strings.Contains(grep(d.Log(), "msg=listening"), " config.trusted_proxies=none ") {
		t.Errorf("the listening line does not show that no proxy is trusted:\n%s", d.Log())
	}
}
