package cli

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/presence"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestJobsDaemonsNoneListed: with no daemon on the Redis, `jobs daemons`
// prints nothing when piped and an empty "daemons" array with -o json, exit 0
// both ways.
func TestJobsDaemonsNoneListed(t *testing.T) {
	r := redistest.Start(t)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"piped", nil, ""},
		{"json", []string{"-o", "json"}, "{\n  \"daemons\": []\n}\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, append([]string{"--redis", r.URL(), "jobs", "daemons"}, tt.args...)...)
			if code != ExitOK || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if diff := cmp.Diff(tt.want, out); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPrintDaemons: the table on a terminal gives UP and SEEN as top's
// ages, piped rows give them in whole seconds; an empty list is "No
// daemons." on a terminal, nothing piped, and an empty array in JSON.
// withQueues is l with its first daemon working critical=6,default=3,low,
// weighted (WORKER_QUEUES), its others every queue.
func withQueues(l presence.List) presence.List {
	ds := slices.Clone(l.Daemons)
	ds[0].Queues = []queue.WorkerQueue{{Name: "critical", Weight: 6}, {Name: "default", Weight: 3}, {Name: "low", Weight: 1}}
	ds[0].QueueOrder = queue.OrderWeighted
	return presence.List{Daemons: ds}
}

func TestPrintDaemons(t *testing.T) {
	d := func(id string, pid int, status string, up, seen float64, workers int, busy int64) presence.Daemon {
		return presence.Daemon{Record: presence.Record{ID: id, Host: "h", PID: pid, Version: "v1.2.0", Workers: workers, Busy: busy, Status: status},
			UpSeconds: up, SeenSeconds: seen}
	}
	two := presence.List{Daemons: []presence.Daemon{
		d("h:7:aa", 7, presence.StatusRunning, 3*3600+4*60+59.9, 0.25, 4, 3),
		d("h:8:bb", 8, presence.StatusStopping, 184.6, 4.5, 0, 0),
	}}
	tests := []struct {
		name      string
		tty, json bool
		list      presence.List
		want      string
	}{
		{"piped", false, false, two, "h:7:aa\th\t7\tv1.2.0\trunning\t11099\t0\t4\t3\n" +
			"h:8:bb\th\t8\tv1.2.0\tstopping\t184\t4\t0\t0\n"},
		{"terminal", true, false, two, " ID      HOST  PID  VERSION  STATUS    UP     SEEN   WORKERS  BUSY \n" +
			" h:7:aa  h     7    v1.2.0   running   3h04m  250ms  4        3    \n" +
			" h:8:bb  h     8    v1.2.0   stopping  3m04s  4.5s   0        0    \n"},
		{"none piped", false, false, presence.List{}, ""},
		{"none on a terminal", true, false, presence.List{}, "No daemons.\n"},
		{"none in json", false, true, presence.List{}, "{\n  \"daemons\": []\n}\n"},
		// wq40: a daemon with WORKER_QUEUES adds QUEUES, last.
		{"queue sets piped", false, false, withQueues(two), "h:7:aa\th\t7\tv1.2.0\trunning\t11099\t0\t4\t3\tcritical=6,default=3,low (weighted)\n" +
			"h:8:bb\th\t8\tv1.2.0\tstopping\t184\t4\t0\t0\tall\n"},
		{"queue sets on a terminal", true, false, withQueues(two), " ID      HOST  PID  VERSION  STATUS    UP     SEEN   WORKERS  BUSY  QUEUES                              \n" +
			" h:7:aa  h     7    v1.2.0   running   3h04m  250ms  4        3     critical=6,default=3,low (weighted) \n" +
			" h:8:bb  h     8    v1.2.0   stopping  3m04s  4.5s   0        0     all                                 \n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			p := &Printer{Out: &out, TTY: tt.tty, JSON: tt.json, Now: func() time.Time { return goldenNow }}
			if err := printDaemons(p, tt.list); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}
