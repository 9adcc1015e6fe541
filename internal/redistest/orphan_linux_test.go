package redistest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestServerDiesWithItsTest: a test binary killed outright (its -timeout's
// panic exits without cleanups; here SIGKILL) leaves no redis-server behind.
// The helper below runs in a child test process, starts a server, prints its
// address and waits to be killed.
func TestServerDiesWithItsTest(t *testing.T) {
	if os.Getenv("REDISTEST_ORPHAN_HELPER") != "" {
		t.Skip("the helper's own run")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestOrphanHelper$", "-test.v")
	// The helper's temporary directories go in this test's, which is
	// removed at its end: the helper, killed, cannot remove them itself.
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(), "REDISTEST_ORPHAN_HELPER=1", "TMPDIR="+tmp)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr, dir := "", ""
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if d, ok := strings.CutPrefix(line, "DIR "); ok {
			dir = d
		}
		if a, ok := strings.CutPrefix(line, "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		_ = cmd.Process.Kill()
		t.Fatal("the helper printed no address")
	}
	if err := Ping(addr); err != nil {
		t.Fatalf("the helper's server does not answer: %v", err)
	}
	if !strings.HasPrefix(dir, tmp+string(os.PathSeparator)) {
		t.Errorf("the helper's server lives in %q, outside this test's %s: nothing removes it", dir, tmp)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for Ping(addr) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server at %s outlived its killed test process", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOrphanHelper(t *testing.T) {
	if os.Getenv("REDISTEST_ORPHAN_HELPER") == "" {
		t.Skip("run by TestServerDiesWithItsTest")
	}
	s := Start(t)
	fmt.Printf("DIR %s\nADDR %s\n", s.Dir, s.Addr())
	time.Sleep(time.Minute) // killed long before
}
