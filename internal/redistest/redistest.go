// Package redistest starts throwaway redis-server processes on free loopback
// ports for tests, and stops them by pid when the test ends. Tests of the
// Redis stores run against these real servers, never against a fake.
package redistest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/testenv"
)

// Server is one redis-server process owned by a test.
type Server struct {
	tb   testing.TB
	Port int
	Dir  string
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Binary returns the path of redis-server, or "" when it is not installed.
func Binary() string {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Require skips tb when redis-server is missing, loudly, or fails it when the
// CI variable is set, so that nobody skips the Redis tests by accident.
func Require(tb testing.TB) string {
	tb.Helper()
	bin := Binary()
	if bin != "" {
		return bin
	}
	testenv.Missing(tb, "redis-server is not installed: run scripts/ensure-redis.sh (make test does) to run the Redis tests")
	return ""
}

// Start starts a redis-server on a free loopback port with persistence off
// (plus any extra arguments, e.g. "--appendonly", "yes") and stops it when
// the test ends.
func Start(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	Require(tb)
	s := &Server{tb: tb, Dir: tb.TempDir(), args: extra}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		s.Port, err = FreePort()
		if err != nil {
			continue
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		tb.Fatalf("redistest: start redis-server: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL is the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Pid is the process id of the running server, 0 when stopped.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Server) start() error {
	args := []string{
		"--port", strconv.Itoa(s.Port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.Dir,
		"--logfile", filepath.Join(s.Dir, "redis.log"),
		"--daemonize", "no",
		"--protected-mode", "no",
	}
	args = append(args, s.args...)
	cmd := exec.Command(Binary(), args...)
	cmd.SysProcAttr = ProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			return fmt.Errorf("redis-server exited: %v: %s", err, lastLines(string(log), 3))
		default:
		}
		// The server answering must be this process: a port FreePort
		// found free may be taken meanwhile by a server another test
		// (another package, run at the same time) started, which would
		// answer PING while this one fails to bind, and two tests would
		// then share one server (a flake: one's SCRIPT FLUSH or FLUSHALL
		// under the other's feet). This one then exits, and start fails
		// and is retried on another port.
		if Ping(s.Addr()) == nil && servedBy(s.Addr(), cmd.Process.Pid) {
			s.mu.Lock()
			s.cmd = cmd
			s.mu.Unlock()
			go func() { <-done }() // reap; Stop waits on the process state below
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return fmt.Errorf("redis-server on port %d did not answer PING within 10s", s.Port)
}

// Stop kills the server (SIGKILL, after SIGCONT in case it was paused) and
// waits until its port is closed. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			break
		}
		if c, err := net.DialTimeout("tcp", s.Addr(), 50*time.Millisecond); err != nil {
			break
		} else {
			c.Close()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart stops the server and starts it again on the same port, with the
// same data directory (so an AOF, when enabled, is replayed).
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	var err error
	for i := 0; i < 50; i++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.tb.Fatalf("redistest: restart redis-server on port %d: %v", s.Port, err)
}

// Pause stops the process with SIGSTOP: connections stay open but nothing
// answers, the way a stalled server looks to its clients.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

// PauseUntil pauses the server (Pause) and returns the call that resumes
// it, once however often it is called; the test's end calls it too, so a
// test that fails while the server is paused leaves it running.
func (s *Server) PauseUntil(tb testing.TB) (resume func()) {
	s.Pause()
	var once sync.Once
	resume = func() { once.Do(s.Resume) }
	tb.Cleanup(resume)
	return resume
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Do sends one command to addr and returns its whole reply as text: simple
// and bulk strings as they are (so INFO returns all of its lines), integers
// in decimal, a null as "", arrays as fmt.Sprint of their items; an error
// reply is an error. Enough for FLUSHALL, CONFIG SET and INFO in tests
// without a client library.
func Do(addr string, args ...string) (string, error) {
	reply, err := command(addr, args...)
	if err != nil {
		return "", err
	}
	switch v := reply.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	}
	return fmt.Sprint(reply), nil
}

// servedBy reports whether the Redis server at addr is the process pid
// (INFO server's process_id).
func servedBy(addr string, pid int) bool {
	info, err := Do(addr, "INFO", "server")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return v == strconv.Itoa(pid)
		}
	}
	return false
}

// Ping returns nil when a Redis server at addr answers PING.
func Ping(addr string) error {
	r, err := Do(addr, "PING")
	if err != nil {
		return err
	}
	if r != "PONG" {
		return fmt.Errorf("unexpected PING reply %q", r)
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// FlushAll empties every given server (FLUSHALL), so a test sharing servers
// with others starts from nothing.
func FlushAll(tb testing.TB, servers ...*Server) {
	tb.Helper()
	for _, s := range servers {
		if _, err := Do(s.Addr(), "FLUSHALL"); err != nil {
			tb.Fatalf("FLUSHALL on %s: %v", s.Addr(), err)
		}
	}
}

// ACLUser creates (or replaces) the ACL user name with password on the
// server, its rules given as ACL SETUSER takes them (e.g. "~*", "&*",
// "+@all", "-@dangerous"), and returns a URL that logs in as it. The default
// user stays as it is, so the test can still set things up over s.Addr().
func (s *Server) ACLUser(tb testing.TB, name, password string, rules ...string) string {
	tb.Helper()
	args := append([]string{"ACL", "SETUSER", name, "reset", "on", ">" + password}, rules...)
	if _, err := Do(s.Addr(), args...); err != nil {
		tb.Fatalf("redistest: ACL SETUSER %s: %v", name, err)
	}
	return "redis://" + url.UserPassword(name, password).String() + "@" + s.Addr()
}

// ReadmeACLUser creates the ACL user that README.md's ACL paragraph gives
// (its "ACL SETUSER refrakt on >PASSWORD …" line), for the key prefix
// prefix in place of the README's "refrakt:" (in its key and channel
// patterns), and returns a URL that logs in as it. Tests that run refrakt as
// that user fail on a command, key or channel the code uses and the README
// does not allow.
func (s *Server) ReadmeACLUser(tb testing.TB, prefix string) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	readme, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "README.md"))
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	const head = "ACL SETUSER refrakt on >PASSWORD "
	for line := range strings.SplitSeq(string(readme), "\n") {
		rules, ok := strings.CutPrefix(line, head)
		if !ok {
			continue
		}
		fields := strings.Fields(rules)
		for i, f := range fields {
			if strings.HasPrefix(f, "~refrakt:") || strings.HasPrefix(f, "&refrakt:") {
				fields[i] = f[:1] + prefix + f[len("~refrakt:"):]
			}
		}
		return s.ACLUser(tb, "refrakt-"+strings.Trim(prefix, ":"), "readme-acl", fields...)
	}
	tb.Fatalf("redistest: no %q line in README.md", head)
	return ""
}
