package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCompletion: `completion SHELL` prints a script; alone it prints its
// help like `jobs` and `limits` do; a shell it cannot write for is a usage
// error in one line.
func TestCompletion(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    string // in stdout
		wantStderr string // the whole of stderr
	}{
		{"bash", []string{"completion", "bash"}, ExitOK, "bash completion", ""},
		{"zsh", []string{"completion", "zsh"}, ExitOK, "compdef", ""},
		{"no shell: its help", []string{"completion"}, ExitOK, "Available Commands:", ""},
		{"an unsupported shell", []string{"completion", "tcsh"}, ExitUsage, "",
			"refrakt: completion: unsupported shell \"tcsh\" (want one of bash, fish, powershell, zsh)\n"},
		{"two shells", []string{"completion", "bash", "zsh"}, ExitUsage, "", "refrakt: unknown command \"zsh\" for \"refrakt completion bash\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := runCLI(t, nil, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.wantCode, stderr)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout %.200q, want it to contain %q", out, tt.wantOut)
			}
			if tt.wantCode != ExitOK && out != "" {
				t.Errorf("stdout %.200q, want none", out)
			}
			if diff := cmp.Diff(tt.wantStderr, stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTooLargeIsBadInput: a daemon (or a proxy before it) answering 413
// refused input that is too big to send: exit 2, as for other bad input.
func TestTooLargeIsBadInput(t *testing.T) {
	for _, body := range []string{
		`{"error":{"code":"too_large","message":"request body is larger than 1048576 bytes"}}`,
		`<html>413 Request Entity Too Large</html>`, // a proxy, no envelope
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			_, _ = w.Write([]byte(body))
		}))
		err := NewAPIClient(srv.URL, "tok").Do(context.Background(), http.MethodPost, "/api/dev/jobs/enqueue", map[string]string{"type": "echo"}, nil)
		srv.Close()
		if code := exitCode(err); code != ExitUsage {
			t.Errorf("413 with %s: %v, exit %d, want %d", body, err, code, ExitUsage)
		}
	}
}
