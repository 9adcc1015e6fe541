package redistest

import "testing"

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
