package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// devEnqueue enqueues one job through the developer API and returns its id.
func devEnqueue(t *testing.T, d *daemontest.Daemon, body string) string {
	t.Helper()
	resp, b := d.Call(http.MethodPost, "/api/dev/jobs/enqueue", body)
	var j struct{ ID string }
	if err := json.Unmarshal(b, &j); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("enqueue %s: %d, %v", body, resp.StatusCode, err)
	}
	return j.ID
}

// jobField reads one field of a job's hash (prefix refrakt:, queue q).
func jobField(t *testing.T, rdb *redis.Client, q, id, field string) string {
	t.Helper()
	v, err := rdb.HGet(context.Background(), "refrakt:q:{"+q+"}:j:"+id, field).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	return v
}

// redisDaemon starts a daemon on a fresh redis-server with env added, waits
// until it is ready, and returns it with a client of that Redis.
func redisDaemon(t *testing.T, env ...string) (*daemontest.Daemon, *redis.Client) {
	t.Helper()
	r := redistest.Start(t)
	d := daemontest.Start(t, append([]string{"QUEUE_URL=" + r.URL()}, env...))
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return d, rdb
}

// waitRunning waits until job id of queue default is running.
func waitRunning(t *testing.T, rdb *redis.Client, id string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); jobField(t, rdb, "default", id, "status") != "running"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the job never ran")
		}
	}
}

// holdDrain opens a request whose body never comes: HTTP's drain waits for
// it until the shutdown's deadline.
func holdDrain(t *testing.T, d *daemontest.Daemon) {
	t.Helper()
	c, err := net.Dial("tcp", d.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := fmt.Fprintf(c, "POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
}

// TestStopTakesNoNewJob: from the stop signal on, no job starts, although
// HTTP's drain goes on until the deadline. Workers went on taking jobs until
// the drain ended (a review: 28 of 40 started after SIGTERM), jobs cut
// short at the deadline and run again elsewhere.
func TestStopTakesNoNewJob(t *testing.T) {
	t.Parallel()
	d, rdb := redisDaemon(t, "SHUTDOWN_TIMEOUT=3s", "WORKER_CONCURRENCY=2")
	var ids []string
	for range 20 {
		ids = append(ids, devEnqueue(t, d, `{"type":"sleep","queue":"bulk","payload":{"ms":300}}`))
	}
	for deadline := time.Now().Add(10 * time.Second); jobField(t, rdb, "bulk", ids[0], "started_at") == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no job started")
		}
	}
	holdDrain(t, d)
	time.Sleep(100 * time.Millisecond) // the held request is read
	stop := time.Now()
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.Log())
	}
	late, states := 0, map[string]int{}
	for _, id := range ids {
		states[jobField(t, rdb, "bulk", id, "status")]++
		ms, _ := strconv.ParseInt(jobField(t, rdb, "bulk", id, "started_at"), 10, 64)
		if ms > stop.Add(50*time.Millisecond).UnixMilli() {
			late++
		}
	}
	if late > 0 {
		t.Errorf("%d of %d jobs started after the stop signal, want 0", late, len(ids))
	}
	if states["succeeded"]+states["pending"] != len(ids) {
		t.Errorf("jobs after the stop: %v, want each succeeded or pending (handed back)", states)
	}
}

// TestSecondSignalStopsAtOnce: a second SIGTERM during the stop ends it at
// once, handing the running job back (it was ignored: the daemon waited out
// SHUTDOWN_TIMEOUT).
func TestSecondSignalStopsAtOnce(t *testing.T) {
	t.Parallel()
	d, rdb := redisDaemon(t, "SHUTDOWN_TIMEOUT=60s")
	id := devEnqueue(t, d, `{"type":"sleep","payload":{"ms":50000}}`)
	waitRunning(t, rdb, id)
	d.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.Log())
	}
	if !strings.Contains(d.Log(), "told to stop again") {
		t.Errorf("the forced stop is not logged:\n%s", d.Log())
	}
	if st := jobField(t, rdb, "default", id, "status"); st != "pending" {
		t.Errorf("the running job after the forced stop: %s, want pending (handed back)", st)
	}
}

// TestHangupStopsGracefully: SIGHUP (a terminal or an ssh session closing)
// stops the daemon as SIGTERM does; it killed it (exit 129, no stop).
func TestHangupStopsGracefully(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, nil)
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	d.Signal(syscall.SIGHUP)
	if code := d.Wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGHUP, want 0\n%s", code, d.Log())
	}
	if !strings.Contains(d.Log(), `msg=stopped`) {
		t.Errorf("no graceful stop logged:\n%s", d.Log())
	}
}

// TestLogReaderGoneIsNotFatal: a daemon whose stderr reader went away
// (`serve | head`, a log shipper restarting) goes on, and stops gracefully
// when told; SIGPIPE killed it at its next log line.
func TestLogReaderGoneIsNotFatal(t *testing.T) {
	t.Parallel()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := daemontest.Command(t, nil, "serve", "--addr", "127.0.0.1:0")
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	sc := bufio.NewScanner(pr)
	for sc.Scan() && !strings.Contains(sc.Text(), "msg=ready") {
	}
	pr.Close() // the reader goes away
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("after its log reader went away and SIGTERM: %v, want exit 0", waitErr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop within 15 s")
	}
}

// TestForcedStopWhileHTTPDrains (a code review's test): a second SIGTERM
// while a request still holds HTTP's drain ends the stop with exit 0 and
// "stopped"; the drain's context.Canceled was taken for an error (exit 1).
func TestForcedStopWhileHTTPDrains(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, []string{"SHUTDOWN_TIMEOUT=60s"})
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	holdDrain(t, d)
	time.Sleep(100 * time.Millisecond) // the held request is read
	d.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	d.Signal(syscall.SIGTERM)
	code := d.Wait(15 * time.Second)
	if code != 0 {
		t.Errorf("exit %d after a forced stop, want 0\n%s", code, d.Log())
	}
	if !strings.Contains(d.Log(), "msg=stopped") {
		t.Errorf("no \"stopped\" line after a forced stop:\n%s", d.Log())
	}
}

// TestNohupDaemonSurvivesHangup (a code review's test): a daemon started
// with SIGHUP ignored (`nohup refrakt serve &`, a supervisor that ignores
// it) keeps ignoring it; watching SIGHUP had undone that.
func TestNohupDaemonSurvivesHangup(t *testing.T) {
	t.Parallel()
	// The daemon, run by a shell that ignores SIGHUP first, as nohup does.
	cmd := daemontest.Command(t, nil, "serve", "--addr", "127.0.0.1:0")
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Path, cmd.Args = sh, append([]string{"sh", "-c", `trap '' HUP; exec "$@"`, "sh"}, cmd.Args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var log strings.Builder
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !sent && strings.Contains(sc.Text(), "msg=ready") {
				close(ready)
				sent = true
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	select {
	case <-ready:
	case <-exited:
		t.Fatal("exited before ready")
	case <-time.After(15 * time.Second):
		t.Fatal("not ready within 15 s")
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	select {
	case <-exited:
		t.Errorf("a daemon started with SIGHUP ignored (nohup) stopped on SIGHUP:\n%s", log.String())
	case <-time.After(2 * time.Second):
	}
}

// TestAssistantInFlightAtStopIsServed (a code review's test): a POST
// /assistant in flight at the stop signal is served, although the workers
// take no new job: its job runs (prefetched, or run by the request itself).
// Once the workers stopped taking jobs at the signal, it waited out 9/10 of
// SHUTDOWN_TIMEOUT and got 503 (on the memory backend, its job lost).
func TestAssistantInFlightAtStopIsServed(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, []string{"WORKER_CONCURRENCY=1", "SHUTDOWN_TIMEOUT=10s"})
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	busy := devEnqueue(t, d, `{"type":"sleep","payload":{"ms":1000}}`)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get(d.URL + "/run/" + busy)
		if err != nil {
			t.Fatal(err)
		}
		var j struct{ Status string }
		_ = json.NewDecoder(resp.Body).Decode(&j)
		resp.Body.Close()
		if j.Status == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the busy job never ran")
		}
	}
	type answer struct {
		code int
		body string
		took time.Duration
	}
	got := make(chan answer, 1)
	go func() {
		start := time.Now()
		resp, err := http.Post(d.URL+"/assistant", "application/json", strings.NewReader(`{"type":"ping"}`))
		if err != nil {
			got <- answer{code: -1, body: err.Error(), took: time.Since(start)}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- answer{resp.StatusCode, string(b), time.Since(start)}
	}()
	time.Sleep(200 * time.Millisecond) // the assistant request waits behind the busy job
	d.Signal(syscall.SIGTERM)
	a := <-got
	if a.code != http.StatusOK {
		t.Errorf("POST /assistant in flight at SIGTERM: %d after %s: %s; want 200 (the job runs once the worker is free, ~1 s)", a.code, a.took.Round(time.Millisecond), a.body)
	}
	if code := d.Wait(20 * time.Second); code != 0 {
		t.Errorf("exit %d after the stop, want 0\n%s", code, d.Log())
	}
}

// TestMemoryStopSaysWhichJobsEnd (review dur28): on the memory backend a
// stop drops the unfinished jobs (README: nothing outlives the daemon
// there), and its log now says how many, by state; it said nothing. A
// stop with none says nothing of them, and so does a stop on Redis, where
// the jobs stay.
func TestMemoryStopSaysWhichJobsEnd(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, []string{"WORKER_CONCURRENCY=0", "SHUTDOWN_TIMEOUT=3s"})
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	for range 2 {
		devEnqueue(t, d, `{"type":"ping"}`)
	}
	for range 3 {
		devEnqueue(t, d, `{"type":"ping","queue":"later","delay_ms":3600000}`)
	}
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.Log())
	}
	line := grep(d.Log(), "unfinished jobs end with the daemon")
	for _, want := range []string{"level=WARN", "pending=2", "running=0", "scheduled=3", "retry=0"} {
		if !strings.Contains(line, want) {
			t.Errorf("stop line %q lacks %s; log:\n%s", line, want, d.Log())
		}
	}

	empty := daemontest.Start(t, nil)
	empty.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	r := redistest.Start(t)
	onRedis := daemontest.Start(t, []string{"QUEUE_URL=" + r.URL(), "WORKER_CONCURRENCY=0"})
	onRedis.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	devEnqueue(t, onRedis, `{"type":"ping"}`)
	for _, d := range []*daemontest.Daemon{empty, onRedis} {
		d.Signal(syscall.SIGTERM)
		if code := d.Wait(15 * time.Second); code != 0 {
			t.Fatalf("exit %d\n%s", code, d.Log())
		}
		if strings.Contains(d.Log(), "end with the daemon") {
			t.Errorf("a stop that drops no job said it did:\n%s", d.Log())
		}
	}
}

// TestStopSaysWhichJobsItCutShort: a stop whose SHUTDOWN_TIMEOUT cuts a
// running job short says so at WARN, with the job's id and that it was
// handed back (qsem31 NIT-2: the log said only "context deadline exceeded").
func TestStopSaysWhichJobsItCutShort(t *testing.T) {
	t.Parallel()
	d, rdb := redisDaemon(t, "SHUTDOWN_TIMEOUT=1s", "WORKER_CONCURRENCY=1")
	id := devEnqueue(t, d, `{"type":"sleep","payload":{"ms":50000}}`)
	waitRunning(t, rdb, id)
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, d.Log())
	}
	line := grep(d.Log(), "running jobs cut short")
	for _, want := range []string{"level=WARN", "handed_back=1", "not_handed_back=0", "interrupted=1", "interrupted_ids=" + id} {
		if !strings.Contains(line, want) {
			t.Errorf("stop line %q lacks %s; log:\n%s", line, want, d.Log())
		}
	}
	if st := jobField(t, rdb, "default", id, "status"); st != "pending" {
		t.Errorf("the job cut short: %s, want pending (handed back)", st)
	}
}
