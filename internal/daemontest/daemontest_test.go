package daemontest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// buildHelperEnv set: TestBuildHelper builds the binary and prints its path.
const buildHelperEnv = "DAEMONTEST_BUILD_HELPER"

func TestMain(m *testing.M) { Main(m) }

// TestMainRemovesTheBinary: a test process that built the binary leaves no
// directory of it behind (every `make test` left 43 MB a package that
// starts daemons, 29 GB over two days of runs here).
func TestMainRemovesTheBinary(t *testing.T) {
	tmp := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestBuildHelper$", "-test.v")
	cmd.Env = append(os.Environ(), buildHelperEnv+"=1", "TMPDIR="+tmp)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the helper failed: %v\n%s", err, out)
	}
	bin := ""
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "BIN "); ok {
			bin = p
		}
	}
	if !strings.HasPrefix(bin, tmp) {
		t.Fatalf("the helper built %q, not under its TMPDIR %s:\n%s", bin, tmp, out)
	}
	if _, err := os.Stat(bin); !os.IsNotExist(err) {
		t.Errorf("the binary %s outlived its test process (stat: %v)", bin, err)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, binPrefix+"*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestBuildHelper(t *testing.T) {
	if os.Getenv(buildHelperEnv) == "" {
		t.Skip("run by TestMainRemovesTheBinary")
	}
	bin := Binary(t)
	if _, err := os.Stat(bin); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("BIN " + bin + "\n")
}

// TestRemoveStaleSparesLiveProcesses: Binary removes the directories of
// test processes that are gone (killed before Main could), and only those.
func TestRemoveStaleSparesLiveProcesses(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	dir := func(name string) string {
		p := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Join(p, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := dir(binPrefix + strconv.Itoa(gone.Process.Pid) + "-123")
	mine := dir(binPrefix + strconv.Itoa(os.Getpid()) + "-456")
	other := dir(binPrefix + "789") // the old naming: no process to ask
	removeStale(tmp)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("%s of a process gone is still there (stat: %v)", stale, err)
	}
	for _, p := range []string{mine, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}
