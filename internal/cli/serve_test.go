package cli

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := Run(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestServeRejectsBadSettings(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"env", map[string]string{"QUEUE_MAX_PENDING": "abc"}, []string{"serve"}, `refrakt: QUEUE_MAX_PENDING: "abc" is not a whole number`},
		// A value a flag gave is named by the flag, one a variable gave by
		// the variable; the flag's was named by the variable.
		{"flag", nil, []string{"serve", "--workers", "-3"}, "refrakt: --workers: -3 must be between 0 and 1024"},
		{"env out of range", map[string]string{"WORKER_CONCURRENCY": "-3"}, []string{"serve"}, "refrakt: WORKER_CONCURRENCY: -3 must be between 0 and 1024"},
		{"flag out of range beside env", map[string]string{"QUEUE_MAX_PENDING": "-1"}, []string{"serve", "--job-history", "0"},
			"refrakt: --job-history: 0 must be at least 1; QUEUE_MAX_PENDING: -1 must not be negative"},
		{"unknown flag", nil, []string{"serve", "--bogus"}, "refrakt: unknown flag: --bogus"},
		{"extra arg", nil, []string{"serve", "now"}, `refrakt: unknown command "now" for "refrakt serve"`},
		{"bool flag value", nil, []string{"serve", "--rate-limit-enabled=maybe"}, `refrakt: --rate-limit-enabled: "maybe" is not true or false`},
		// backoff36: the retry backoff's base and cap stop start-up too.
		{"retry base below 1ms", map[string]string{"JOB_RETRY_BASE": "0s"}, []string{"serve"}, "refrakt: JOB_RETRY_BASE: 0s must be at least 1ms"},
		{"retry max below the base", map[string]string{"JOB_RETRY_BASE": "1m"}, []string{"serve", "--job-retry-max", "30s"},
			"refrakt: --job-retry-max: 30s must be at least JOB_RETRY_BASE (1m0s)"},
		// timeout37: JOB_TIMEOUT stops start-up when 0 or past a week.
		{"job timeout zero", map[string]string{"JOB_TIMEOUT": "0"}, []string{"serve"}, "refrakt: JOB_TIMEOUT: 0s must be at least 1ms"},
		{"job timeout past a week", nil, []string{"serve", "--job-timeout", "200h"}, "refrakt: --job-timeout: 200h0m0s must be at most 168h0m0s"},
		{"retry max past a week", nil, []string{"serve", "--job-retry-max", "720h"},
			"refrakt: --job-retry-max: 720h0m0s must be at most 168h0m0s: a longer cap holds a failing job in the retry set for weeks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.env, tt.args...)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr %q", code, ExitUsage, stderr)
			}
			if strings.TrimSpace(stderr) != tt.want {
				t.Errorf("stderr %q, want the one line %q", stderr, tt.want)
			}
		})
	}
}

func TestServeHelpListsEverySetting(t *testing.T) {
	code, out, _ := runCLI(t, nil, "serve", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"QUEUE_URL", "--redis", "WORKER_CONCURRENCY", "--workers", "RATE_LIMIT_ON_BACKEND_ERROR", "SHUTDOWN_TIMEOUT", "10s"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
}

// TestServeHelpNamesTypes: each flag's help names the type of its value
// (every flag was "string", the text all settings are parsed from).
func TestServeHelpNamesTypes(t *testing.T) {
	_, out, _ := runCLI(t, nil, "serve", "--help")
	for _, want := range []string{"--workers int ", "--ban-seconds duration ", "--penalty-factor float ", "--addr string ", "--rate-limit-enabled "} {
		if !strings.Contains(out, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
	if strings.Contains(out, "--rate-limit-enabled bool") || strings.Contains(out, "--workers string") {
		t.Error("serve --help shows a wrong type")
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "refrakt ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: %d %q", code, out)
	}
	code, out, _ = runCLI(t, nil, "version", "-o", "json")
	if code != 0 || !strings.Contains(out, `"go_version"`) {
		t.Fatalf("version -o json: %d %q", code, out)
	}
}

// TestVersionFlag: the binary's `refrakt --version` prints what `refrakt
// version` prints and exits 0 (it was an unknown flag); -v stays no flag.
func TestVersionFlag(t *testing.T) {
	run := func(args ...string) (int, string, string) {
		t.Helper()
		cmd := daemontest.Command(t, nil, args...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
	}
	_, want, _ := run("version")
	code, out, stderr := run("--version")
	if code != 0 || out != want || stderr != "" || !strings.HasPrefix(out, "refrakt ") {
		t.Errorf("refrakt --version: exit %d, stdout %q, stderr %q; want exit 0 and %q, as refrakt version", code, out, stderr, want)
	}
	if code, _, stderr := run("-v"); code != ExitUsage || strings.TrimSpace(stderr) != "refrakt: unknown shorthand flag: 'v' in -v" {
		t.Errorf("refrakt -v: exit %d, stderr %q; want it refused, exit 2", code, stderr)
	}
}

func TestServeEndToEndSIGTERM(t *testing.T) {
	d := daemontest.Start(t, nil)
	if !strings.Contains(d.Log(), "msg=listening addr=127.0.0.1:") {
		t.Fatalf("log does not name the real address:\n%s", d.Log())
	}
	d.WaitHTTP("/readyz", 200, 5*time.Second)
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0\n%s", code, d.Log())
	}
	if strings.Contains(d.Log(), d.Token) {
		t.Fatal("the developer token was logged")
	}
}

func TestServeGeneratesTokenFile(t *testing.T) {
	d := daemontest.Start(t, []string{"REFRAKT_DEVELOPER_TOKEN="})
	if !strings.Contains(d.Log(), "msg=\"developer token\" path="+d.StateDir+"/refrakt/token created=true") {
		t.Fatalf("log does not say where the token is:\n%s", d.Log())
	}
	d.Signal(syscall.SIGINT)
	if code := d.Wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGINT", code)
	}
}

func TestServeBindErrorAtOnce(t *testing.T) {
	code, _, stderr := runCLI(t, map[string]string{"REFRAKT_DEVELOPER_TOKEN": "x0123456789abcdef"}, "serve", "--addr", daemontest.TakenAddr(t))
	if code != ExitFailed || !strings.Contains(stderr, "address already in use") {
		t.Fatalf("exit %d stderr %q; want 1 and the bind error", code, stderr)
	}
}

// TestServeBindErrorLeavesNoTokenFile (top27 L5): a start that fails to
// bind, on the port of a daemon running with REFRAKT_DEVELOPER_TOKEN,
// wrote a token file first, which clients then sent to that daemon, which
// rejected it.
func TestServeBindErrorLeavesNoTokenFile(t *testing.T) {
	state := t.TempDir()
	code, _, stderr := runCLI(t, map[string]string{"XDG_STATE_HOME": state}, "serve", "--addr", daemontest.TakenAddr(t))
	if code != ExitFailed || !strings.Contains(stderr, "address already in use") {
		t.Fatalf("exit %d stderr %q; want 1 and the bind error", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(state, "refrakt", "token")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("token file after a failed bind: %v, want none", err)
	}
}

func TestServeWaitsForRedis(t *testing.T) {
	r := redistest.Start(t)
	r.Stop()
	d := daemontest.Start(t, []string{"QUEUE_URL=" + r.URL()})
	d.WaitHTTP("/readyz", 503, 5*time.Second)
	d.WaitHTTP("/healthz", 200, 5*time.Second)
	r.Restart()
	d.WaitHTTP("/readyz", 200, 20*time.Second)
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d\n%s", code, d.Log())
	}
}

// TestPasswordsNeverPrinted: a URL with a mistake in it is quoted in the
// error, but never with its password (README: "Tokens and Redis passwords
// are never logged"); parsers quote the URL they were given whole.
func TestPasswordsNeverPrinted(t *testing.T) {
	const secret = "RedisPASSsecret42"
	dead := daemontest.ClosedAddr(t)
	for _, args := range [][]string{
		{"serve", "--addr", "127.0.0.1:0", "--redis", "redis://u:" + secret + "@127.0.0.1:bad"},
		{"serve", "--addr", "127.0.0.1:0", "--redis", "http://u:" + secret + "@127.0.0.1:17101"},
		{"serve", "--addr", "127.0.0.1:0", "--redis", "rediss://:" + secret + "@[::1:17101/%zz"},
		{"jobs", "list", "--redis", "redis://u:" + secret + "@127.0.0.1:bad/0"},
		{"jobs", "list", "--server", "http://u:" + secret + "@" + dead, "--token", "x"},
		{"jobs", "list", "--server", "http://u:" + secret + "@127.0.0.1:bad", "--token", "x"},
		{"jobs", "list", "--server", "ftp://u:" + secret + "@127.0.0.1:1", "--token", "x"},
		// From a code review: no "://", and raw / ? in the password.
		{"serve", "--addr", "127.0.0.1:0", "--redis", "redis:/:" + secret + "@127.0.0.1:6379"},
		{"serve", "--addr", "127.0.0.1:0", "--redis", "redis://:/" + secret + "@127.0.0.1:6379"},
		{"serve", "--addr", "127.0.0.1:0", "--redis", "redis://:?" + secret + "@127.0.0.1:6379"},
		{"jobs", "list", "--redis", "unix://u:1/" + secret + "@/tmp/x.sock"},
		{"jobs", "list", "--redis", "redis://:/" + secret + "@127.0.0.1:6379"},
	} {
		code, stdout, stderr := runCLI(t, map[string]string{"REFRAKT_DEVELOPER_TOKEN": "developer-token-0123456789"}, args...)
		if code == 0 {
			t.Errorf("%v: exit 0", args)
		}
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("%v printed the password: %q", args, stderr)
		}
		if !strings.Contains(stderr, "xxxxx") && !strings.Contains(stderr, "percent-encode") {
			t.Errorf("%v: %q does not show where the password was", args, stderr)
		}
	}
}

// TestServeRefusesABadURLBeforeListening: a QUEUE_URL no parser takes stops
// serve with exit 2 and its one line, before the listener binds, as any
// other bad setting does (it was said after "listening").
func TestServeRefusesABadURLBeforeListening(t *testing.T) {
	for _, url := range []string{"redis://127.0.0.1:6379?max_redirects=x", "redis://127.0.0.1:bad"} {
		code, _, stderr := runCLI(t, map[string]string{"REFRAKT_DEVELOPER_TOKEN": "developer-token-0123456789"}, "serve", "--addr", "127.0.0.1:0", "--redis", url)
		if code != ExitUsage || strings.Contains(stderr, "listening") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "QUEUE_URL") {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and one line naming QUEUE_URL, before listening", url, code, stderr)
		}
	}
}
