package redistest

import (
	"strings"
	"testing"
)

func TestStartPauseRestart(t *testing.T) {
	s := Start(t)
	if err := Ping(s.Addr()); err != nil {
		t.Fatalf("ping after start: %v", err)
	}
	if _, err := Do(s.Addr(), "SET", "k", "v"); err != nil {
		t.Fatalf("set: %v", err)
	}
	s.Pause()
	if err := Ping(s.Addr()); err == nil {
		t.Fatal("ping answered while the server was paused")
	}
	s.Resume()
	if err := Ping(s.Addr()); err != nil {
		t.Fatalf("ping after resume: %v", err)
	}
	pid := s.Pid()
	s.Restart()
	if s.Pid() == pid || s.Pid() == 0 {
		t.Fatalf("restart kept pid %d (now %d)", pid, s.Pid())
	}
	if err := Ping(s.Addr()); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	s.Stop()
	if err := Ping(s.Addr()); err == nil {
		t.Fatal("ping answered after stop")
	}
}

func TestDoReadsWholeReplies(t *testing.T) {
	s := Start(t)
	info, err := Do(s.Addr(), "INFO", "server")
	if err != nil || !strings.Contains(info, "redis_version:") {
		t.Fatalf("INFO = %q, %v; want the whole bulk reply", info, err)
	}
	if n, err := Do(s.Addr(), "INCRBY", "n", "41"); err != nil || n != "41" {
		t.Fatalf("INCRBY = %q, %v", n, err)
	}
	if v, err := Do(s.Addr(), "GET", "missing"); err != nil || v != "" {
		t.Fatalf("GET missing = %q, %v", v, err)
	}
	if _, err := Do(s.Addr(), "NOSUCHCOMMAND"); err == nil {
		t.Fatal("an error reply was not an error")
	}
}

// TestStartRefusesAnotherServersPort: a server started on a port another
// test's server holds must not take that server for its own (it answers
// PING while this one fails to bind): start fails, so Start retries on
// another port, and two tests never share a server.
func TestStartRefusesAnotherServersPort(t *testing.T) {
	a := Start(t)
	b := &Server{tb: t, Dir: t.TempDir(), Port: a.Port}
	if err := b.start(); err == nil {
		b.Stop()
		t.Fatalf("start on %s, which another server holds, succeeded", a.Addr())
	}
	if err := Ping(a.Addr()); err != nil {
		t.Fatalf("the other server: %v", err)
	}
}
