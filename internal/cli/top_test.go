package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/daemon"
)

// topInputs is what `refrakt top` resolved from its flags and environment.
type topInputs struct {
	Server   string
	Token    string
	Interval time.Duration
	NoColor  bool
}

func TestTopOptions(t *testing.T) {
	state := t.TempDir()
	writeTokenFile(t, state, "from-file")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want topInputs
	}{
		{
			name: "defaults",
			want: topInputs{Server: DefaultServer, Interval: time.Second},
		},
		{
			name: "the environment",
			env:  map[string]string{"REFRAKT_SERVER": "http://10.0.0.7:9000/", "REFRAKT_TOKEN": "env-tok", "NO_COLOR": "1"},
			want: topInputs{Server: "http://10.0.0.7:9000", Token: "env-tok", Interval: time.Second, NoColor: true},
		},
		{
			name: "flags win over the environment",
			env:  map[string]string{"REFRAKT_SERVER": "http://10.0.0.7:9000", "REFRAKT_TOKEN": "env-tok"},
			args: []string{"--server", "http://127.0.0.1:8081", "--token", "flag-tok", "--interval", "250ms", "--no-color"},
			want: topInputs{Server: "http://127.0.0.1:8081", Token: "flag-tok", Interval: 250 * time.Millisecond, NoColor: true},
		},
		{
			name: "the token file serve writes",
			env:  map[string]string{"XDG_STATE_HOME": state},
			args: []string{"--interval", "100ms"},
			want: topInputs{Server: DefaultServer, Token: "from-file", Interval: 100 * time.Millisecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got topInputs
			f := &Factory{IO: IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}},
				Getenv: func(k string) string { return tt.env[k] }}
			cmd := newTopCmd(f, func(_ context.Context, o *TopOptions) error {
				got = topInputs{o.Conn.Server, o.Conn.Token, o.Interval, o.Conn.NoColor}
				return nil
			})
			cmd.SetArgs(tt.args)
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("resolved (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTopRejects(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"an interval under 100ms", []string{"top", "--interval", "50ms"}, "refrakt: --interval 50ms: must be at least 100ms"},
		{"a bad interval", []string{"top", "--interval", "soon"}, `refrakt: invalid argument "soon" for "--interval" flag: must be a duration like "30s" or "5m"`},
		{"an argument", []string{"top", "now"}, `refrakt: unknown command "now" for "refrakt top"`},
		{"json output", []string{"top", "-o", "json"}, "refrakt: --output: top draws a screen; use `refrakt jobs list` or `refrakt limits get` for tables and JSON"},
		{"no terminal", []string{"top"}, "refrakt: top needs a terminal: its output is not one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, nil, tt.args...)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr %q", code, ExitUsage, stderr)
			}
			if diff := cmp.Diff(tt.want, strings.TrimSpace(stderr)); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTopHelpHidesOutput: top draws a screen, so its help does not offer
// -o/--output (given anyway, it is refused: TestTopRejects), while the
// commands that print still do.
func TestTopHelpHidesOutput(t *testing.T) {
	_, out, _ := runCLI(t, nil, "top", "--help")
	if strings.Contains(out, "--output") || !strings.Contains(out, "--interval") {
		t.Errorf("top --help:\n%s\nwant --interval and no --output", out)
	}
	for _, args := range [][]string{{"jobs", "list", "--help"}, {"limits", "get", "--help"}} {
		if _, out, _ := runCLI(t, nil, args...); !strings.Contains(out, "-o, --output") {
			t.Errorf("%s:\n%s\nwant -o, --output", strings.Join(args, " "), out)
		}
	}
}

// writeTokenFile writes token where `refrakt serve` keeps its generated
// token under the state directory state (daemon.TokenPath), and returns
// the file's path.
func writeTokenFile(t *testing.T, state, token string) string {
	t.Helper()
	path, err := daemon.TokenPath(func(k string) string { return map[string]string{"XDG_STATE_HOME": state}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
