package top

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/testenv"
)

// terminal is a tmux server of the test's own (its own socket) with one
// 80×24 session running a command.
type terminal struct {
	t    *testing.T
	tmux string
	sock string
}

// startTerminal runs argv in a fresh 80×24 tmux session with env added.
// The pane stays after the command exits.
// Without tmux the test is skipped, loudly, or fails when CI is set.
func startTerminal(t *testing.T, env []string, argv ...string) *terminal {
	t.Helper()
	tmux := testenv.Require(t, "tmux", "run scripts/ensure-tmux.sh (make test does) for the real-terminal test")
	term := &terminal{t: t, tmux: tmux, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	args := []string{"-f", "/dev/null", "start-server", ";", "set-option", "-g", "remain-on-exit", "on", ";",
		"new-session", "-d", "-s", "top", "-x", "80", "-y", "24"}
	for _, kv := range env {
		args = append(args, "-e", kv)
	}
	// The shell tmux runs the command with writes its exit status to a file:
	// a terminal's last lines are not a reliable place to read it from.
	args = append(args, strings.Join(argv, " ")+"; echo $? >"+term.statusFile())
	term.run(args...)
	t.Cleanup(func() {
		// Ends this test's tmux server (and the program, if still running) only.
		_ = exec.Command(tmux, "-S", term.sock, "kill-server").Run()
	})
	return term
}

func (term *terminal) run(args ...string) string {
	term.t.Helper()
	out, err := exec.Command(term.tmux, append([]string{"-S", term.sock}, args...)...).CombinedOutput()
	if err != nil {
		term.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (term *terminal) screen() string { return term.run("capture-pane", "-p", "-t", "top") }

func (term *terminal) statusFile() string { return term.sock + ".status" }

// exitStatus waits up to 5s for the program to end and returns its status.
func (term *terminal) exitStatus() string {
	term.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(term.statusFile()); err == nil && strings.HasSuffix(string(b), "\n") {
			return strings.TrimSpace(string(b))
		}
	}
	term.t.Fatalf("still running 5s later; screen:\n%s", term.screen())
	return ""
}

// quit presses q and fails the test unless the program then exits 0.
func (term *terminal) quit() {
	term.t.Helper()
	term.run("send-keys", "-t", "top", "q")
	if status := term.exitStatus(); status != "0" {
		term.t.Fatalf("exit status %s after q, want 0", status)
	}
}

// exited reports whether the session's shell has finished.
func (term *terminal) exited() bool {
	return strings.TrimSpace(term.run("display-message", "-p", "-t", "top", "#{pane_dead}")) == "1"
}

// waitScreen waits up to 10s for every want to be on the screen.
func (term *terminal) waitScreen(what string, wants ...string) string {
	term.t.Helper()
	has := func(s string) bool {
		for _, w := range wants {
			if !strings.Contains(s, w) {
				return false
			}
		}
		return true
	}
	var s string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		dead := term.exited()
		if s = term.screen(); has(s) {
			return s
		}
		if dead {
			term.t.Fatalf("%s: the program exited; screen:\n%s", what, s)
		}
	}
	term.t.Fatalf("%s: %q not on the screen within 10s; screen:\n%s", what, wants, s)
	return ""
}

// TestRealTerminal runs the real `refrakt top` in tmux against a server
// that serves the snapshot fixture the way the daemon's
// GET /api/obs/snapshot does: it shows the pending count and the busiest
// bucket's key, says disconnected when the server goes away while it keeps
// running, and exits 0 on q.
func TestRealTerminal(t *testing.T) {
	srv := fixtureServer(t)

	bin := daemontest.Binary(t)
	term := startTerminal(t, []string{
		"REFRAKT_SERVER=" + srv.URL, "REFRAKT_TOKEN=t0k", "XDG_STATE_HOME=" + t.TempDir(),
	}, bin, "top", "--interval", "200ms")

	term.waitScreen("first data", "1423", "run:ip:203.0.113.7")

	srv.CloseClientConnections()
	srv.Close()
	term.waitScreen("server gone", "disconnected:", "1423")
	if term.exited() {
		t.Fatalf("the program exited when the server went away; screen:\n%s", term.screen())
	}

	term.quit()
}

// fixtureServer serves the snapshot fixture the way the daemon's
// GET /api/obs/snapshot does, to the bearer token t0k only.
func fixtureServer(t *testing.T) *httptest.Server {
	snap := loadSnapshot(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/obs/snapshot" || r.Header.Get("Authorization") != "Bearer t0k" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"code":"unauthorized","message":"bad token"}}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(snap)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestRealTerminalWrongToken: a token the server rejects is shown as an
// authentication problem, not as a lost connection; top keeps retrying.
func TestRealTerminalWrongToken(t *testing.T) {
	srv := fixtureServer(t)
	term := startTerminal(t, []string{"REFRAKT_SERVER=" + srv.URL, "REFRAKT_TOKEN=wrong", "XDG_STATE_HOME=" + t.TempDir()},
		daemontest.Binary(t), "top", "--interval", "200ms")
	screen := term.waitScreen("token rejected", "authentication failed: bad token")
	if strings.Contains(screen, "disconnected") {
		t.Errorf("a rejected token shown as disconnected; screen:\n%s", screen)
	}
	term.quit()
}

// TestRealTerminalInputNotATerminal: with its output a terminal but its
// input not one, top refuses at once, in one line, with exit code 2, as it
// does when its output is piped.
func TestRealTerminalInputNotATerminal(t *testing.T) {
	srv := fixtureServer(t)
	// The shell stays 3s after top exits, keeping its status: tmux 3.3a
	// blanks a pane when it dies (remain-on-exit), so the screen is read
	// while the shell sleeps.
	term := startTerminal(t, []string{"REFRAKT_SERVER=" + srv.URL, "REFRAKT_TOKEN=t0k", "XDG_STATE_HOME=" + t.TempDir()},
		daemontest.Binary(t), "top", "</dev/null;", "r=$?;", "sleep", "3;", "(exit", "$r)")
	const refusal = "refrakt: top needs a terminal: its input is not one"
	screen := term.waitScreen("input refused", refusal)
	var lines []string
	for _, l := range strings.Split(screen, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || lines[0] != refusal {
		t.Errorf("screen %q, want the one line of the refusal", screen)
	}
	if status := term.exitStatus(); status != "2" {
		t.Fatalf("exit status %s, want 2; screen:\n%s", status, term.screen())
	}
}

// TestRealTerminalHidesServerPassword: the header names the daemon by its
// URL on every frame; a password in --server is shown as xxxxx, as --redis
// is, never as written.
func TestRealTerminalHidesServerPassword(t *testing.T) {
	srv := fixtureServer(t)
	const password = "SEKRITtop1"
	server := strings.Replace(srv.URL, "http://", "http://u:"+password+"@", 1)
	term := startTerminal(t, []string{"REFRAKT_TOKEN=t0k", "XDG_STATE_HOME=" + t.TempDir()},
		daemontest.Binary(t), "top", "--interval", "200ms", "--server", "'"+server+"'")
	redacted := strings.TrimPrefix(strings.Replace(srv.URL, "http://", "http://u:xxxxx@", 1), "http://")
	screen := term.waitScreen("first data", "1423", redacted)
	if strings.Contains(screen, password) {
		t.Errorf("the password is on the screen:\n%s", screen)
	}
	term.quit()
}

// TestRealTerminalEscapesServerText: names and errors in the snapshot
// reach the real terminal with their control and bidi characters escaped
// (\u001b, \u009b, \u202e), so a hostile last error cannot clear the
// screen, nor a queue name reverse the row.
func TestRealTerminalEscapesServerText(t *testing.T) {
	snap := loadSnapshot(t)
	snap.Queues[0].Name = "mail\u202elia"
	snap.DeadJobs[0].LastError = "boom\x1b[2Jx"
	snap.Buckets[0].Key = "run:ip:\u009b1m1.2.3.4"
	snap.Daemon.Version = "v9\u2067"
	term := topOnSnapshot(t, snap)
	term.waitScreen("escaped", `mail\u202elia`, `boom\u001b[2Jx`, `run:ip:\u009b1m1.2.3.4`, `v9\u2067`, "1423")
	term.quit()
}

// TestRealTerminalFilterFindsEscapedName (code28 NIT 12): a name is shown
// escaped, and typing what the screen shows (\u202e) into the filter finds
// it, as typing part of the name as it is does.
func TestRealTerminalFilterFindsEscapedName(t *testing.T) {
	snap := loadSnapshot(t)
	snap.Queues[0].Name = "mail\u202elia"
	term := topOnSnapshot(t, snap)
	term.waitScreen("escaped", `mail\u202elia`)
	term.run("send-keys", "-t", "top", "/")
	term.run("send-keys", "-t", "top", "-l", `\u202E`)
	term.run("send-keys", "-t", "top", "Enter")
	screen := term.waitScreen("filtered", `filter: \u202E`, `mail\u202elia`)
	if strings.Contains(screen, "no queue matches") {
		t.Errorf("the filter %q found no queue:\n%s", `\u202E`, screen)
	}
	term.quit()
}

// topOnSnapshot starts the real binary's top in a terminal, on a server
// that answers snap to every request.
func topOnSnapshot(t *testing.T, snap any) *terminal {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(snap)
	}))
	t.Cleanup(srv.Close)
	return startTerminal(t, []string{"REFRAKT_SERVER=" + srv.URL, "REFRAKT_TOKEN=t0k", "XDG_STATE_HOME=" + t.TempDir()},
		daemontest.Binary(t), "top", "--interval", "200ms")
}
