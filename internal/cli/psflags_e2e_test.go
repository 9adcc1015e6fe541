package cli

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
)

// TestSecretFlagsWarned (sec31 NIT 6): a flag is in the command line, which
// ps shows to every user of the machine. The real binary warns, one line
// per flag on stderr, when a flag carries a password or a token: serve's
// --redis with a password and its three token flags (in its log, at WARN),
// its --job-webhooks, and the CLI's --redis and --server with a password. The line names the
// flag and its variable, never the value. Given as variables, the same
// values bring no warning.
func TestSecretFlagsWarned(t *testing.T) {
	t.Parallel()
	dead := daemontest.ClosedAddr(t)
	secrets := []string{"PwSECRETredis1", "DevSECRETtoken-0123456789", "OpSECRETtoken-0123456789", "PromSECRETtoken-0123456789", "HookSECRETkey"}
	redisURL := "redis://refrakt:" + secrets[0] + "@" + dead + "/0"
	hooks := "report=http://" + dead + "/r?key=" + secrets[4] // rvhook38 L6: a URL's query may hold a key
	noSecret := func(t *testing.T, out string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("the output holds the secret %q:\n%s", s, out)
			}
		}
	}

	t.Run("serve, flags", func(t *testing.T) {
		t.Parallel()
		d := daemontest.Start(t, nil, "--redis", redisURL, "--developer-token", secrets[1], "--operator-token", secrets[2], "--prometheus-token", secrets[3], "--job-webhooks", hooks)
		d.WaitHTTP("/healthz", http.StatusOK, 15*time.Second)
		log := d.Log()
		for _, want := range [][2]string{{"--redis", "QUEUE_URL"}, {"--developer-token", "REFRAKT_DEVELOPER_TOKEN"},
			{"--operator-token", "REFRAKT_OPERATOR_TOKEN"}, {"--prometheus-token", "PROMETHEUS_BEARER_TOKEN"}, {"--job-webhooks", "JOB_WEBHOOKS"}} {
			n := 0
			for _, line := range strings.Split(log, "\n") {
				if strings.Contains(line, "level=WARN") && strings.Contains(line, "see in ps") &&
					strings.Contains(line, "flag="+want[0]+" ") && strings.HasSuffix(line, "env="+want[1]) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d warnings naming %s and %s, want 1:\n%s", n, want[0], want[1], log)
			}
		}
		noSecret(t, log)
	})
	t.Run("serve, env vars", func(t *testing.T) {
		t.Parallel()
		d := daemontest.Start(t, []string{"QUEUE_URL=" + redisURL, "REFRAKT_DEVELOPER_TOKEN=" + secrets[1], "REFRAKT_OPERATOR_TOKEN=" + secrets[2], "PROMETHEUS_BEARER_TOKEN=" + secrets[3], "JOB_WEBHOOKS=" + hooks},
			"--redis-cluster", "false") // a flag without a secret: no warning either
		d.WaitHTTP("/healthz", http.StatusOK, 15*time.Second)
		log := d.Log()
		if strings.Contains(log, "see in ps") {
			t.Errorf("a warning with the secrets in env vars:\n%s", log)
		}
		noSecret(t, log)
	})

	bin := daemontest.Binary(t)
	server := "http://u:" + secrets[0] + "@" + dead
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want string // the warning, "" for none
	}{
		{"jobs --redis", nil, []string{"jobs", "list", "--redis", redisURL}, "refrakt: warning: --redis carries a password, which other users of this machine see in ps; prefer REFRAKT_REDIS\n"},
		{"limits --redis", nil, []string{"limits", "get", "--redis", redisURL}, "refrakt: warning: --redis carries a password, which other users of this machine see in ps; prefer REFRAKT_REDIS\n"},
		{"top --redis", nil, []string{"top", "--redis", redisURL}, "refrakt: warning: --redis carries a password, which other users of this machine see in ps; prefer REFRAKT_REDIS\n"},
		{"jobs --server", []string{"REFRAKT_TOKEN=x"}, []string{"jobs", "list", "--server", server}, "refrakt: warning: --server carries a password, which other users of this machine see in ps; prefer REFRAKT_SERVER\n"},
		{"REFRAKT_REDIS", []string{"REFRAKT_REDIS=" + redisURL}, []string{"jobs", "list"}, ""},
		{"REFRAKT_SERVER", []string{"REFRAKT_SERVER=" + server, "REFRAKT_TOKEN=x"}, []string{"jobs", "list"}, ""},
		{"--redis without a password", nil, []string{"jobs", "list", "--redis", "redis://refrakt@" + dead + "/0"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, stopped := runBinaryFor(t, bin, 30*time.Second, append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "XDG_STATE_HOME=" + t.TempDir()}, tt.env...), tt.args...)
			if stopped {
				t.Fatalf("still running after 30 s:\n%s", out)
			}
			noSecret(t, out)
			if got := strings.Count(out, "see in ps"); tt.want == "" && got != 0 || tt.want != "" && (got != 1 || !strings.HasPrefix(out, tt.want)) {
				t.Errorf("output %q, want it to start with the warning %q (and hold it once)", out, tt.want)
			}
		})
	}
}
