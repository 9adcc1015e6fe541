package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/cli/top"
	"github.com/refrakt/refrakt/internal/daemontest"
)

// strangerEnv, set, makes this test binary a stranger's listener
// (runStranger) instead of running the tests.
const strangerEnv = "REFRAKT_TEST_STRANGER_LISTENER"

// strangerUID is the user the stranger's listener runs as: nobody.
const strangerUID = 65534

// runStranger is the stranger's listener: it listens on the address
// strangerEnv names ("tcp4 127.0.0.1:0", "tcp6 [::1]:0", or "mapped", an
// IPv6 socket taking IPv4 connections on ::ffff:127.0.0.1), writes
// "LISTEN host:port", then for each connection "GOT <quoted bytes>": what
// the client sent before the end of its headers or of the connection,
// answered with a 401. It ends when its standard input does.
func runStranger(spec string) {
	var ln net.Listener
	var err error
	if spec == "mapped" {
		ln, err = listenMapped()
	} else {
		network, addr, _ := strings.Cut(spec, " ")
		ln, err = net.Listen(network, addr)
	}
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Println("LISTEN", ln.Addr())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
	var mu sync.Mutex
	for {
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			var got []byte
			buf := make([]byte, 4096)
			for !bytes.Contains(got, []byte("\r\n\r\n")) {
				n, err := c.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
			}
			if len(got) > 0 {
				const body = `{"error":{"code":"unauthorized","message":"a valid bearer token is required"}}`
				_, _ = fmt.Fprintf(c, "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			}
			mu.Lock()
			fmt.Println("GOT", strconv.Quote(string(got)))
			mu.Unlock()
		}()
	}
}

// listenMapped listens as a dual-stack server does, on an IPv6 socket
// taking IPv4 connections, but on ::ffff:127.0.0.1 only (net.Listen
// refuses that address for tcp6).
func listenMapped() (net.Listener, error) {
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "mapped")
	defer f.Close()
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 0); err != nil {
		return nil, err
	}
	sa := &syscall.SockaddrInet6{Addr: [16]byte{10: 0xff, 11: 0xff, 12: 127, 15: 1}}
	if err := syscall.Bind(fd, sa); err != nil {
		return nil, err
	}
	if err := syscall.Listen(fd, 16); err != nil {
		return nil, err
	}
	return net.FileListener(f)
}

// stranger is a listener of another user, started by startStranger.
type stranger struct {
	Addr  string // host:port
	lines chan string
}

// strangerBinary copies this test binary where another user may run it
// (its own directory is not for others to read), for startStranger; the
// copy is removed at t's end. It skips where this process may not start
// another user's (not root) or where the kernel lists no sockets
// (/proc/net/tcp: not Linux).
func strangerBinary(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("starting a process of another user needs root")
	}
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp here:", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "refrakt-stranger-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "stranger.test")
	if err := copyExecutable(self, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// startStranger runs bin (strangerBinary) as user nobody, listening as
// spec says (runStranger), and stops it (by its pid) at the test's end.
func startStranger(t *testing.T, bin, spec string) *stranger {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = []string{strangerEnv + "=" + spec}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: strangerUID, Gid: strangerUID},
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	s := &stranger{lines: make(chan string, 64)}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	select {
	case l, ok := <-s.lines:
		if !ok || !strings.HasPrefix(l, "LISTEN ") {
			t.Fatalf("the stranger's listener did not start: %q", l)
		}
		s.Addr = strings.TrimPrefix(l, "LISTEN ")
	case <-time.After(20 * time.Second):
		t.Fatal("the stranger's listener did not start within 20s")
	}
	return s
}

// next returns what the listener got on its next connection.
func (s *stranger) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			t.Fatal("the stranger's listener ended")
		}
		got, err := strconv.Unquote(strings.TrimPrefix(l, "GOT "))
		if err != nil {
			t.Fatalf("the stranger's listener wrote %q", l)
		}
		return got
	case <-time.After(15 * time.Second):
		t.Fatal("the stranger's listener got no connection within 15s")
	}
	return ""
}

func copyExecutable(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TestE2ETokenFileOnlyForItsOwnersServer (sec31 LOW 3) runs the real
// binary: on a machine with several users a loopback port is not the
// daemon's; another user (here nobody) listening there got the token
// file's token. It goes only to a server of the user owning the token
// file: to another's, nothing at all is sent, the command exits 3 with one
// line naming the address, the listener's uid and how to send a token on
// purpose; and REFRAKT_TOKEN is sent there as before. IPv4, IPv6 and a
// dual-stack listener (IPv4-mapped, listed in /proc/net/tcp6).
func TestE2ETokenFileOnlyForItsOwnersServer(t *testing.T) {
	stranger := strangerBinary(t)
	bin := daemontest.Binary(t)
	state := t.TempDir()
	writeTokenFile(t, state, "local-dev-token")
	tests := []struct {
		name, spec string
		server     func(addr string) string
	}{
		{"127.0.0.1", "tcp4 127.0.0.1:0", func(a string) string { return "http://" + a }},
		{"::1", "tcp6 [::1]:0", func(a string) string { return "http://" + a }},
		{"localhost", "tcp4 127.0.0.1:0", func(a string) string { return "http://localhost:" + a[strings.LastIndexByte(a, ':')+1:] }},
		{"dual-stack listener, IPv4-mapped", "mapped", func(a string) string {
			return "http://127.0.0.1:" + a[strings.LastIndexByte(a, ':')+1:]
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startStranger(t, stranger, tt.spec)
			server := tt.server(s.Addr)
			run := func(env ...string) (int, string) {
				cmd := exec.Command(bin, "jobs", "list", "--server", server)
				cmd.Env = append([]string{"HOME=" + state, "XDG_STATE_HOME=" + state}, env...)
				var errOut bytes.Buffer
				cmd.Stderr = &errOut
				err := cmd.Run()
				var ee *exec.ExitError
				if err != nil && !errors.As(err, &ee) {
					t.Fatal(err)
				}
				return cmd.ProcessState.ExitCode(), errOut.String()
			}

			code, stderr := run()
			if got := s.next(t); got != "" {
				t.Errorf("the stranger's listener got %q; want nothing (the token file's token above all)", got)
			}
			want := fmt.Sprintf("another user listens there (uid %d, not the token file's owner, uid 0): the token file's token was not sent (if this is the daemon you mean, give its token with REFRAKT_TOKEN, or --token, which ps shows)", strangerUID)
			if code != ExitUnreachable || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "refrakt: "+server) || !strings.Contains(stderr, want) {
				t.Errorf("exit %d, stderr %q; want %d and one line naming %s and containing %q", code, stderr, ExitUnreachable, server, want)
			}

			// A token given is the user's choice: sent as before.
			code, stderr = run("REFRAKT_TOKEN=given-token")
			if got := s.next(t); !strings.Contains(got, "\r\nAuthorization: Bearer given-token\r\n") {
				t.Errorf("with REFRAKT_TOKEN the listener got %q; want that token", got)
			}
			if code != ExitFailed || !strings.Contains(stderr, "the daemon rejected the token given with REFRAKT_TOKEN") {
				t.Errorf("with REFRAKT_TOKEN: exit %d, stderr %q; want %d, the token rejected", code, stderr, ExitFailed)
			}
		})
	}
}

// TestTopKeepsTheTokenFileFromAStranger (sec31 LOW 3): `top` fetches again
// and again on one client, reconnecting after each failure; every
// connection is checked, not only the first, and each failure says why in
// the header's words.
func TestTopKeepsTheTokenFileFromAStranger(t *testing.T) {
	s := startStranger(t, strangerBinary(t), "tcp4 127.0.0.1:0")
	state := t.TempDir()
	writeTokenFile(t, state, "local-dev-token")
	env := map[string]string{"HOME": state, "XDG_STATE_HOME": state}
	conn := ConnOptions{Server: "http://" + s.Addr}
	if err := conn.resolve(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	src := top.NewHTTPSource(conn.Server, conn.apiClient())
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := src.Fetch(ctx)
		cancel()
		var w interface{ TokenWithheld() string }
		if !errors.As(err, &w) || !strings.Contains(w.TokenWithheld(), fmt.Sprintf("another user listens there (uid %d", strangerUID)) {
			t.Errorf("fetch %d: %v; want the token withheld from another user's listener", i+1, err)
		}
		if got := s.next(t); got != "" {
			t.Errorf("fetch %d: the stranger's listener got %q; want nothing", i+1, got)
		}
	}
}
