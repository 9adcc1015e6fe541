package cli

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
)

// TestPasswordFragmentsNeverPrinted runs the real binary, the daemon with
// QUEUE_URL and the CLI with --redis, on URLs whose passwords hold every
// character that can mislead a parser, and checks that no piece of the
// password (no substring of 3 characters or more, as written or decoded)
// reaches the terminal or the log, whether the URL parses, is refused, or
// names a server that is down. A parser's error quotes the text around its
// fault, which may be a piece of the password: a review found
// `invalid port ":Tr0ub4dor&3" after host`.
func TestPasswordFragmentsNeverPrinted(t *testing.T) {
	bin := daemontest.Binary(t)
	dead := daemontest.ClosedAddr(t) // 127.0.0.1:port
	deadPort := dead[strings.LastIndex(dead, ":")+1:]
	tests := []struct {
		name      string
		url       string
		passwords []string // the password as written, and decoded
	}{
		{"review: & and raw /", "redis://:Tr0ub4dor&3/x@" + dead + "/0", []string{"Tr0ub4dor&3/x"}},
		{"review: raw #", "redis://:Qz9#Kw7x@" + dead + "/0", []string{"Qz9#Kw7x"}},
		{"review: raw ?", "redis://:Qz9?Kw7x@" + dead + "/0", []string{"Qz9?Kw7x"}},
		{"review: user and raw /", "redis://alice:Qz9/Kw7x@" + dead, []string{"Qz9/Kw7x"}},
		{"review: : and @ and /", "redis://:Qz9:Kw7@pw/9@" + dead, []string{"Qz9:Kw7@pw/9"}},
		{"raw @ (net/url takes it)", "redis://:Qz9@Kw7x@" + dead, []string{"Qz9@Kw7x"}},
		{"raw @ then ?", "redis://:Qz9@Kw7?x1@" + dead, []string{"Qz9@Kw7?x1"}},
		{"raw :", "redis://:Qz9:Kw7x@" + dead, []string{"Qz9:Kw7x"}},
		{"raw &", "redis://bob:Qz9&Kw7x@" + dead + "/1", []string{"Qz9&Kw7x"}},
		{"raw %", "redis://:Qz9%Kw7x@" + dead, []string{"Qz9%Kw7x"}},
		{"space", "redis://:Qz9 Kw7x@" + dead, []string{"Qz9 Kw7x"}},
		{"encoded /", "redis://:Qz9%2FKw7x@" + dead + "/0", []string{"Qz9%2FKw7x", "Qz9/Kw7x"}},
		{"encoded @ and space", "redis://carol:Qz9%40Kw7%20x@" + dead, []string{"Qz9%40Kw7%20x", "Qz9@Kw7 x"}},
		{"user, password and raw #", "rediss://dave:Qz9#Kw7x@" + dead, []string{"Qz9#Kw7x"}},
		{"port not a number", "redis://:Qz9Kw7x@127.0.0.1:bad/0", []string{"Qz9Kw7x"}},
		{"port not a number, raw /", "redis://:Qz9/Kw7x@127.0.0.1:bad/0", []string{"Qz9/Kw7x"}},
		{"IPv6", "redis://:Qz9/Kw7x@[::1]:" + deadPort + "/0", []string{"Qz9/Kw7x"}},
		{"IPv6 without ]", "redis://:Qz9Kw7x@[::1:" + deadPort, []string{"Qz9Kw7x"}},
		{"IPv6 bad port", "redis://eve:Qz9Kw7x@[::1]:bad", []string{"Qz9Kw7x"}},
		{"@ in the query", "redis://:Qz9Kw7x@" + dead + "/0?client_name=a@b", []string{"Qz9Kw7x"}},
		{"bad database", "redis://:Qz9Kw7x@" + dead + "/x1", []string{"Qz9Kw7x"}},
		{"unix socket, raw /", "unix://:Qz9/Kw7x@/tmp/refrakt-none.sock", []string{"Qz9/Kw7x"}},
		{"no password", "redis://alice@" + dead, nil},
		// A daemon's URL (--server), read by the CLI alone.
		{"server: raw /", "http://u:Qz9/Kw7x@" + dead, []string{"Qz9/Kw7x"}},
		{"server: raw #", "http://u:Qz9#Kw7x@" + dead, []string{"Qz9#Kw7x"}},
		{"server: raw %", "https://u:Qz9%zzKw7x@" + dead, []string{"Qz9%zzKw7x"}},
		{"server: raw @ then ?", "http://:Qz9@Kw7?x1@" + dead, []string{"Qz9@Kw7?x1"}},
		{"server: down", "http://u:Qz9%2FKw7x@" + dead, []string{"Qz9%2FKw7x", "Qz9/Kw7x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			type run struct {
				name string
				args []string
				env  []string
			}
			runs := []run{
				{"cli", []string{"jobs", "list", "--redis", tt.url}, nil},
				{"daemon", []string{"serve", "--addr", "127.0.0.1:0"}, []string{"QUEUE_URL=" + tt.url, "REFRAKT_DEVELOPER_TOKEN=developer-token-0123456789"}},
			}
			if strings.HasPrefix(tt.url, "http") {
				runs = []run{{"cli", []string{"jobs", "list", "--server", tt.url, "--token", "x"}, nil}}
			}
			for _, run := range runs {
				// The daemon retries its backend for ever: it is stopped
				// after 1.5 s. The CLI gives up by itself (on a dead port
				// after about 1.75 s), and must: stopped early, it would
				// print the stop, not its error about the URL.
				limit := 1500 * time.Millisecond
				if run.name == "cli" {
					limit = 30 * time.Second
				}
				out, stopped := runBinaryFor(t, bin, limit, append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "XDG_STATE_HOME=" + t.TempDir()}, run.env...), run.args...)
				if run.name == "cli" && stopped {
					t.Fatalf("cli: still running after %v:\n%s", limit, out)
				}
				if out == "" {
					t.Errorf("%s: printed nothing", run.name)
				}
				if tt.passwords == nil && run.name == "cli" && !strings.Contains(out, "redis://alice@") {
					t.Errorf("cli: %q, want the URL quoted whole (no password in it to hide)", out)
				}
				for _, pw := range tt.passwords {
					for i := 0; i+3 <= len(pw); i++ {
						for j := i + 3; j <= len(pw); j++ {
							if strings.Contains(out, pw[i:j]) {
								t.Fatalf("%s printed %q of the password %q:\n%s", run.name, pw[i:j], pw, out)
							}
						}
					}
				}
			}
		})
	}
}

// runBinaryFor runs bin with env and args, stops it with SIGTERM after d if
// it still runs (a daemon retrying its backend), and returns its stdout and
// stderr, and whether it had to be stopped.
func runBinaryFor(t *testing.T, bin string, d time.Duration, env []string, args ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return out.String(), ctx.Err() != nil
}
