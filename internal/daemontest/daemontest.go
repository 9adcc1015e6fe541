// Package daemontest builds the real refrakt binary once per test process
// and runs it as a daemon for end-to-end tests: the CLI, `top` and the
// lifecycle are tested against the program users run, not a stand-in.
package daemontest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/redistest"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// binPrefix begins the name of the directory Binary builds into, followed
// by the test process's id: refrakt-bin-<pid>-<random>.
const binPrefix = "refrakt-bin-"

// Binary builds ./cmd/refrakt (with -race when the tests run with it) once
// per test process and returns its path. The package's TestMain calls Main,
// which removes it when the tests are done.
func Binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		removeStale(os.TempDir())
		dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", binPrefix, os.Getpid()))
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		buildPath = filepath.Join(dir, "refrakt")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		args := []string{"build", "-o", buildPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/refrakt")
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return buildPath
}

// Main runs the tests of a package that uses Binary and removes the binary
// it built: every package whose tests use this one calls it from TestMain
// (each test process left a 43 MB binary in the temporary directory for
// good). A test process killed before its end leaves its directory, which
// the next Binary removes once the process is gone.
func Main(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// removeStale removes the directories under tmp that Binary made in test
// processes that no longer run.
func removeStale(tmp string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, binPrefix+"*-*"))
	for _, d := range dirs {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), binPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = os.RemoveAll(d)
		}
	}
}

// Daemon is a running `refrakt serve`.
type Daemon struct {
	tb    testing.TB
	cmd   *exec.Cmd
	URL   string // http://127.0.0.1:PORT
	Addr  string // 127.0.0.1:PORT
	Token string // the developer token
	// StateDir is the XDG_STATE_HOME the daemon and its CLI share.
	StateDir string

	mu   sync.Mutex
	log  strings.Builder
	done chan struct{}
	err  error
}

var listenRe = regexp.MustCompile(`msg=listening addr=(\S+)`)

// devToken is the developer token the daemons of these tests are given.
const devToken = "dev-token-for-tests-0123456789"

// Command is the real binary with args, not started, in the minimal
// environment Start gives a daemon (a fresh state directory, the developer
// token, text logs) with env added, in a process group of its own: for a
// test that runs or wires the process itself.
func Command(tb testing.TB, env []string, args ...string) *exec.Cmd {
	tb.Helper()
	cmd, _ := command(tb, env, args...)
	return cmd
}

// command is Command, with its state directory.
func command(tb testing.TB, env []string, args ...string) (*exec.Cmd, string) {
	tb.Helper()
	dir := tb.TempDir()
	cmd := exec.Command(Binary(tb), args...)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"XDG_STATE_HOME=" + dir,
		"REFRAKT_DEVELOPER_TOKEN=" + devToken,
		"LOG_FORMAT=text",
	}, env...)
	cmd.SysProcAttr = redistest.ProcAttr()
	return cmd, dir
}

// Start runs `refrakt serve --addr 127.0.0.1:0 args…` with env added to a
// minimal environment, waits until it is listening and /healthz answers, and
// stops it (SIGKILL) at cleanup if it is still running.
func Start(tb testing.TB, env []string, args ...string) *Daemon {
	tb.Helper()
	return start(tb, 0, env, args)
}

// StartWithNofile is Start with the daemon's RLIMIT_NOFILE (soft and hard)
// set to nofile: the shell's `ulimit -n` before it execs the binary, whose
// process id stays the daemon's.
func StartWithNofile(tb testing.TB, nofile int, env []string, args ...string) *Daemon {
	tb.Helper()
	return start(tb, nofile, env, args)
}

// start is Start, under a file descriptor limit of nofile when it is not 0.
func start(tb testing.TB, nofile int, env, args []string) *Daemon {
	tb.Helper()
	d := &Daemon{tb: tb, done: make(chan struct{}), Token: devToken}
	d.cmd, d.StateDir = command(tb, env, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	if nofile > 0 {
		sh, err := exec.LookPath("sh")
		if err != nil {
			tb.Fatal(err)
		}
		d.cmd.Args = append([]string{"sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), d.cmd.Path}, d.cmd.Args[1:]...)
		d.cmd.Path = sh
	}
	for _, e := range env {
		if strings.HasPrefix(e, "REFRAKT_DEVELOPER_TOKEN=") {
			d.Token = strings.TrimPrefix(e, "REFRAKT_DEVELOPER_TOKEN=")
		}
	}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	d.cmd.Stdout = io.Discard
	if err := d.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.log.WriteString(line + "\n")
			d.mu.Unlock()
			if m := listenRe.FindStringSubmatch(line); m != nil && !sent {
				addr <- m[1]
				sent = true
			}
		}
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	})
	select {
	case a := <-addr:
		d.Addr = a
		d.URL = "http://" + a
	case <-d.done:
		tb.Fatalf("refrakt serve exited before listening: %v\n%s", d.err, d.Log())
	case <-time.After(30 * time.Second):
		tb.Fatalf("refrakt serve did not listen within 30s\n%s", d.Log())
	}
	d.WaitHTTP("/healthz", http.StatusOK, 15*time.Second)
	return d
}

// Log returns what the daemon has written to stderr so far.
func (d *Daemon) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// Pid is the daemon's process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// WaitHTTP polls GET path until it answers status, or fails the test.
func (d *Daemon) WaitHTTP(path string, status int, within time.Duration) {
	d.tb.Helper()
	deadline := time.Now().Add(within)
	last := "no answer"
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			last = resp.Status
			if resp.StatusCode == status {
				cancel()
				return
			}
		} else {
			last = err.Error()
		}
		cancel()
		time.Sleep(20 * time.Millisecond)
	}
	d.tb.Fatalf("GET %s did not answer %d within %s (last: %s)\n%s", path, status, within, last, d.Log())
}

// Signal sends sig to the daemon.
func (d *Daemon) Signal(sig syscall.Signal) { _ = d.cmd.Process.Signal(sig) }

// Wait waits for the daemon to exit and returns its exit code (-1 when it
// was killed by a signal), or fails the test after within.
func (d *Daemon) Wait(within time.Duration) int {
	d.tb.Helper()
	select {
	case <-d.done:
	case <-time.After(within):
		d.tb.Fatalf("refrakt serve did not exit within %s\n%s", within, d.Log())
	}
	if d.err == nil {
		return 0
	}
	if ee, ok := d.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// ClosedAddr returns a loopback address nothing listens on: a backend or a
// server that is down.
func ClosedAddr(tb testing.TB) string {
	tb.Helper()
	port, err := redistest.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// TakenAddr returns a loopback address a listener holds until the test
// ends, so that a daemon told to listen there cannot. It accepts no
// connection: the kernel completes them and nothing ever answers, so it
// also stands for a Redis that accepts and never answers.
func TakenAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// Call sends one request to the daemon with its developer token (and a JSON
// content type when body is not empty), and returns the response, its body
// read and closed, or fails the test when no answer comes.
func (d *Daemon) Call(method, path, body string) (*http.Response, []byte) {
	d.tb.Helper()
	req, err := http.NewRequest(method, d.URL+path, strings.NewReader(body))
	if err != nil {
		d.tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.Token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.tb.Fatalf("%s %s: %v\n%s", method, path, err, d.Log())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		d.tb.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp, b
}
