package cli

import (
	"encoding/json"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/presence"
	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// daemonRows runs the binary's `jobs daemons` (piped: tab-separated rows)
// and returns its rows without the UP and SEEN columns, which move
// between two reads.
func daemonRows(t *testing.T, env map[string]string) [][]string {
	t.Helper()
	code, out, errOut := binCLI(t, env, "jobs", "daemons")
	if code != ExitOK || errOut != "" {
		t.Fatalf("jobs daemons: exit %d, stderr %q", code, errOut)
	}
	rows := [][]string{}
	for line := range strings.SplitSeq(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != len(daemonColumns) {
			t.Fatalf("row %q: %d columns, want %d", line, len(f), len(daemonColumns))
		}
		rows = append(rows, append(f[:5:5], f[7:]...))
	}
	return rows
}

// TestE2EJobsDaemons: the binary's `jobs daemons`, over a daemon's API and
// straight over Redis, lists the two daemons on one Redis alike (id, host,
// pid, version, status, workers, busy), in start order; -o json marks the
// answering daemon self over the API and none over Redis; after one
// daemon's graceful stop (SIGTERM), one is listed both ways at once.
func TestE2EJobsDaemons(t *testing.T) {
	r := redistest.Start(t)
	env := []string{"QUEUE_URL=" + r.URL(), "REFRAKT_PREFIX=dm:"}
	d1 := startDaemon(t, env, "--workers", "2")
	d2 := startDaemon(t, env, "--workers", "0")
	envs := drivers(t, d1, r, "dm:")

	want := func(ds ...*daemontest.Daemon) []string {
		var pids []string
		for _, d := range ds {
			pids = append(pids, strconv.Itoa(d.Pid()))
		}
		return pids
	}
	check := func(what string, pids []string) {
		t.Helper()
		var first [][]string
		for i, de := range envs {
			rows := daemonRows(t, de.env)
			var got []string
			for _, row := range rows {
				got = append(got, row[2])
				if row[4] != "running" || !strings.HasPrefix(row[0], row[1]+":"+row[2]+":") {
					t.Errorf("%s, %s: row %q", what, de.name, row)
				}
			}
			if diff := cmp.Diff(pids, got); diff != "" {
				t.Errorf("%s, %s: pids (-want +got):\n%s", what, de.name, diff)
			}
			if i == 0 {
				first = rows
			} else if diff := cmp.Diff(first, rows); diff != "" {
				t.Errorf("%s: api and redis differ (-api +redis):\n%s", what, diff)
			}
		}
	}
	check("two daemons", want(d1, d2))

	for _, de := range envs {
		code, out, errOut := binCLI(t, de.env, "jobs", "daemons", "-o", "json")
		var l presence.List
		if err := json.Unmarshal([]byte(out), &l); code != ExitOK || errOut != "" || err != nil || len(l.Daemons) != 2 {
			t.Fatalf("%s: -o json: exit %d, %v, stdout %q, stderr %q", de.name, code, err, out, errOut)
		}
		if got := l.Daemons[0]; got.PID != d1.Pid() || got.Workers != 2 || got.Backend != "redis" || got.Addr != d1.Addr || got.Self != (de.name == "api") {
			t.Errorf("%s: first daemon %+v", de.name, got)
		}
		if got := l.Daemons[1]; got.PID != d2.Pid() || got.Workers != 0 || got.Self {
			t.Errorf("%s: second daemon %+v", de.name, got)
		}
	}

	d2.Signal(syscall.SIGTERM)
	if code := d2.Wait(15 * time.Second); code != 0 {
		t.Fatalf("d2 exited %d:\n%s", code, d2.Log())
	}
	check("after d2's stop", want(d1))
}

// TestJobsDaemonsEarlierDaemon: a daemon of an earlier version has no
// daemons route and answers 404: the CLI says so in one line, exit 1; an
// unreachable daemon exits 3.
func TestJobsDaemonsEarlierDaemon(t *testing.T) {
	forEachEarlierDaemon(t, func(t *testing.T, env map[string]string) {
		wantFail(t, env, ExitFailed, "does not know GET /api/obs/daemons (it is of an earlier version, which writes no heartbeat)",
			"jobs", "daemons")
	})
	state := t.TempDir()
	wantFail(t, map[string]string{"REFRAKT_SERVER": "http://" + daemontest.ClosedAddr(t), "REFRAKT_TOKEN": "x", "XDG_STATE_HOME": state, "HOME": state},
		ExitUnreachable, "", "jobs", "daemons")
}
