package scale_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/daemontest"
)

// queueNames returns n queue names spread over the backend's masters: on a
// cluster, round-robin over the masters, so every master holds queues.
func queueNames(t *testing.T, b *backend, n int) []string {
	t.Helper()
	if b.cluster == nil {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("q%d", i)
		}
		return names
	}
	byMaster := map[string][]string{}
	for i := 0; i < 10000; i++ {
		q := fmt.Sprintf("q%d", i)
		m := b.masterOf(queueKey(q))
		byMaster[m] = append(byMaster[m], q)
	}
	var names []string
	for i := 0; len(names) < n; i++ {
		for _, s := range b.masters {
			if len(names) < n && i < len(byMaster[s.Addr()]) {
				names = append(names, byMaster[s.Addr()][i])
			}
		}
	}
	return names
}

// enqueueAll enqueues reqs through the daemons round-robin, eight at a
// time, and returns the jobs in the order of reqs.
func (f *fleet) enqueueAll(reqs []queue.EnqueueRequest) []*queue.Job {
	f.t.Helper()
	jobs := make([]*queue.Job, len(reqs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, req := range reqs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := f.try(f.ds[i%len(f.ds)], http.MethodPost, "/api/dev/jobs/enqueue", req)
			if err != nil || r.status != http.StatusAccepted {
				f.t.Errorf("enqueue %d: %v %d %s", i, err, r.status, r.body)
				return
			}
			var j queue.Job
			if err := json.Unmarshal(r.body, &j); err != nil {
				f.t.Errorf("enqueue %d: %v", i, err)
				return
			}
			jobs[i] = &j
		}()
	}
	wg.Wait()
	if f.t.Failed() {
		f.t.FailNow()
	}
	return jobs
}

// waitSucceeded waits until every job has succeeded and returns them as
// the daemons report them (each read through another daemon).
func (f *fleet) waitSucceeded(within time.Duration, jobs []*queue.Job) []*queue.Job {
	f.t.Helper()
	out := make([]*queue.Job, len(jobs))
	deadline := time.Now().Add(within)
	for i, j := range jobs {
		for {
			out[i] = f.job(f.ds[i%len(f.ds)], j.ID)
			if out[i].Status == queue.StatusSucceeded {
				break
			}
			if time.Now().After(deadline) {
				f.t.Fatalf("job %s (%s) is %s after %s, want succeeded", j.ID, j.Queue, out[i].Status, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return out
}

// attemptCounts counts the jobs by their number of attempts.
func attemptCounts(jobs []*queue.Job) map[int]int {
	out := map[int]int{}
	for _, j := range jobs {
		out[j.Attempts]++
	}
	return out
}

// testJobsOnceAcrossQueues: jobs on six queues (two per master on a
// cluster), enqueued through all three daemons and worked by all three,
// each start once and succeed once: Redis counts one start per job, the
// daemons together report one pending→running and one running→succeeded
// transition per job, and every daemon took part.
func testJobsOnceAcrossQueues(t *testing.T, b *backend) {
	f := startFleet(t, b, 3)
	names := queueNames(t, b, 6)
	const perQueue = 40
	var reqs []queue.EnqueueRequest
	for i := range perQueue * len(names) {
		typ, payload := "ping", json.RawMessage(nil)
		if i%2 == 1 {
			typ, payload = "echo", json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))
		}
		reqs = append(reqs, queue.EnqueueRequest{Type: typ, Payload: payload, Queue: names[i%len(names)]})
	}
	jobs := f.waitSucceeded(20*time.Second, f.enqueueAll(reqs))
	if d := cmp.Diff(map[int]int{1: len(jobs)}, attemptCounts(jobs)); d != "" {
		t.Errorf("jobs by attempts (-want +got):\n%s", d)
	}
	for i, j := range jobs {
		if i%2 == 1 && string(j.Result) != string(reqs[i].Payload) {
			t.Errorf("echo job %s: result %s, want %s", j.ID, j.Result, reqs[i].Payload)
		}
	}
	stats := f.stats(f.ds[1])
	for _, q := range names {
		st := stats[q]
		got := []int64{st.Enqueued, st.Started, st.Succeeded, st.Pending, st.Running}
		if d := cmp.Diff([]int64{perQueue, perQueue, perQueue, 0, 0}, got); d != "" {
			t.Errorf("queue %s: enqueued, started, succeeded, pending, running (-want +got):\n%s", q, d)
		}
		if m := b.masterOf(queueKey(q)); !exists(t, m, "refrakt:q:{"+q+"}:history") {
			t.Errorf("queue %s: its history is not on %s, the master of its slot", q, m)
		}
	}
	started := f.transitions("pending", "running")
	succeeded := f.transitions("running", "succeeded")
	if total(started) != len(jobs) || total(succeeded) != len(jobs) {
		t.Errorf("the daemons counted %v starts and %v successes, want %d in total each", started, succeeded, len(jobs))
	}
	for i, n := range started {
		if n == 0 {
			t.Errorf("daemon %d ran no job (starts per daemon %v): the workers do not share the queues", i, started)
		}
	}
	t.Logf("%d jobs on %d queues; starts per daemon %v", len(jobs), len(names), started)
	for _, d := range f.ds {
		d.WaitHTTP("/healthz", http.StatusOK, time.Second)
	}
}

// testPromotionOnce: delayed jobs are promoted by the tick loops of three
// daemons ticking every 50ms; each is promoted once (the daemons together
// count one scheduled→pending transition per job) and runs once.
func testPromotionOnce(t *testing.T, b *backend) {
	f := startFleet(t, b, 3)
	names := queueNames(t, b, 3)
	var reqs []queue.EnqueueRequest
	for i := range 45 {
		reqs = append(reqs, queue.EnqueueRequest{Type: "ping", Queue: names[i%len(names)], DelayMS: int64(200 + 10*i)})
	}
	jobs := f.enqueueAll(reqs)
	for _, j := range jobs {
		if j.Status != queue.StatusScheduled {
			t.Fatalf("job %s is %s, want scheduled", j.ID, j.Status)
		}
	}
	jobs = f.waitSucceeded(20*time.Second, jobs)
	if d := cmp.Diff(map[int]int{1: len(jobs)}, attemptCounts(jobs)); d != "" {
		t.Errorf("jobs by attempts (-want +got):\n%s", d)
	}
	promoted := f.transitions("scheduled", "pending")
	if total(promoted) != len(jobs) {
		t.Errorf("the daemons promoted %v jobs, want %d in total", promoted, len(jobs))
	}
	t.Logf("%d delayed jobs; promotions per daemon %v", len(jobs), promoted)
}

// testRecurringDoesNotMultiply: a job recurring every second, under three
// tick loops, stays one job: at every look exactly one of it is pending,
// scheduled or running, and it runs about once per second, not three times.
func testRecurringDoesNotMultiply(t *testing.T, b *backend) {
	f := startFleet(t, b, 3)
	q := queueNames(t, b, 1)[0]
	start := time.Now()
	j := f.enqueue(f.ds[0], queue.EnqueueRequest{Type: "ping", Queue: q, IntervalSeconds: 1})
	for i := 0; time.Since(start) < 3500*time.Millisecond; i++ {
		st := f.stats(f.ds[i%3])[q]
		if n := st.Pending + st.Scheduled + st.Running; n != 1 {
			t.Fatalf("look %d: %d copies of the recurring job (%+v), want 1", i, n, st)
		}
		time.Sleep(25 * time.Millisecond)
	}
	elapsed := time.Since(start)
	got := f.job(f.ds[1], j.ID)
	st := f.stats(f.ds[2])[q]
	limit := int(elapsed/time.Second) + 1
	if got.Attempts < 2 || got.Attempts > limit {
		t.Errorf("the recurring job ran %d times in %s, want 2 to %d", got.Attempts, elapsed, limit)
	}
	if st.Started != int64(got.Attempts) && st.Started != int64(got.Attempts)+1 {
		t.Errorf("queue %s started %d runs, the job counts %d attempts", q, st.Started, got.Attempts)
	}
	list := f.jobs(f.ds[0], q)
	if len(list) != 1 || list[0].ID != j.ID {
		t.Errorf("queue %s lists %d jobs, want only the recurring one", q, len(list))
	}
	t.Logf("recurring every 1s: %d runs in %s", got.Attempts, elapsed.Round(time.Millisecond))
}

// jobs lists queue q's jobs through daemon d.
func (f *fleet) jobs(d *daemontest.Daemon, q string) []*queue.Job {
	f.t.Helper()
	var doc struct {
		Jobs []*queue.Job `json:"jobs"`
	}
	f.decode(f.do(d, http.MethodGet, "/api/dev/jobs?queue="+q, nil), http.StatusOK, &doc)
	return doc.Jobs
}

// testKilledDaemonRecovered: the daemon holding the most running jobs is
// SIGKILLed; once their 1s leases expire, the other two recover them and
// run them again; every job succeeds. Each recovery is made once, not once
// per tick loop: the daemons together count exactly one running→pending
// recovery per extra attempt of a job. On an idle machine that is one per
// lost job; on an overloaded one a survivor may also miss extending a 1s
// lease, which costs one more recovery and one more attempt, still paired.
func testKilledDaemonRecovered(t *testing.T, b *backend) {
	f := startFleet(t, b, 3, "JOB_LEASE=1s")
	names := queueNames(t, b, 3)
	var reqs []queue.EnqueueRequest
	for i := range 9 {
		reqs = append(reqs, queue.EnqueueRequest{Type: "sleep", Payload: json.RawMessage(`{"ms":2500}`), Queue: names[i%len(names)]})
	}
	jobs := f.enqueueAll(reqs)
	f.waitUntil(10*time.Second, "all 9 jobs running", func() bool {
		n := int64(0)
		for _, st := range f.stats(f.ds[0]) {
			n += st.Running
		}
		return n == int64(len(jobs))
	})
	started := f.transitions("pending", "running")
	recoveredBefore := f.transitions("running", "pending")
	victim := 0
	for i, n := range started {
		if n > started[victim] {
			victim = i
		}
	}
	lost := started[victim]
	f.ds[victim].Signal(syscall.SIGKILL)
	f.ds[victim].Wait(5 * time.Second)
	t.Logf("starts per daemon %v; killed daemon %d with %d running jobs", started, victim, lost)

	var survivors []*daemontest.Daemon
	for i, d := range f.ds {
		if i != victim {
			survivors = append(survivors, d)
		}
	}
	f.ds = survivors
	jobs = f.waitSucceeded(20*time.Second, jobs)
	byAttempts := attemptCounts(jobs)
	extra, rerun := 0, 0
	for n, count := range byAttempts {
		extra += (n - 1) * count
		if n > 1 {
			rerun += count
		}
	}
	recovered := total(f.transitions("running", "pending")) + recoveredBefore[victim]
	if recovered != extra {
		t.Errorf("the daemons counted %d recoveries for %d extra attempts (jobs by attempts %v): want one recovery per extra attempt", recovered, extra, byAttempts)
	}
	if rerun < lost {
		t.Errorf("%d jobs ran more than once, want at least the %d the killed daemon held (jobs by attempts %v)", rerun, lost, byAttempts)
	}
	if d := cmp.Diff(map[int]int{1: len(jobs) - lost, 2: lost}, byAttempts); d != "" {
		t.Logf("more lease expiries than the kill explains (an overloaded machine), jobs by attempts (-want +got):\n%s", d)
	}
}

// testGaugesAgree: the queue gauges come from Redis, so every daemon
// reports the same pending and running counts per queue, and the same
// number of penalized keys.
func testGaugesAgree(t *testing.T, b *backend) {
	// The strikes must be recorded in Redis, not by a daemon deciding alone
	// after a slow round trip (see testGlobalLimit).
	f := startFleet(t, b, 3, "WORKER_CONCURRENCY=0", "RATE_LIMIT_BACKEND_TIMEOUT=2s")
	names := queueNames(t, b, 3)
	want := map[string]float64{}
	var reqs []queue.EnqueueRequest
	for i, q := range names {
		for range 2*i + 1 {
			reqs = append(reqs, queue.EnqueueRequest{Type: "ping", Queue: q})
		}
		want[q] = float64(2*i + 1)
	}
	f.enqueueAll(reqs)
	// Two 429s give a key strikes: one penalized key.
	for range 5 {
		f.do(f.ds[0], http.MethodGet, "/api/dev/rl-test", nil, "CF-Connecting-IP", "192.0.2.77")
	}
	type gauges struct {
		Pending, Running map[string]float64
		Penalized        float64
	}
	read := func(i int) gauges {
		m := f.metrics(f.ds[i])
		g := gauges{Pending: map[string]float64{}, Running: map[string]float64{}, Penalized: m["refrakt_ratelimit_penalized_keys"].sum()}
		for _, q := range names {
			g.Pending[q] = m["refrakt_queue_pending_jobs"].sum("queue", q)
			g.Running[q] = m["refrakt_queue_running_jobs"].sum("queue", q)
		}
		return g
	}
	wantG := gauges{Pending: want, Running: map[string]float64{names[0]: 0, names[1]: 0, names[2]: 0}, Penalized: 1}
	agree := func(what string) {
		t.Helper()
		for i := range f.ds {
			deadline := time.Now().Add(10 * time.Second)
			for {
				got := read(i)
				d := cmp.Diff(wantG, got)
				if d == "" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: daemon %d's gauges after 10s (-want +got):\n%s", what, i, d)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	agree("after the enqueues")
	// Run one job through daemon 2: every daemon sees one fewer pending.
	var j queue.Job
	f.decode(f.do(f.ds[2], http.MethodPost, "/api/dev/jobs/run-next?queue="+names[2], nil), http.StatusOK, &j)
	wantG.Pending[names[2]]--
	agree("after a job ran on daemon 2")
}
