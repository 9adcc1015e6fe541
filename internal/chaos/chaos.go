// Package chaos runs refrakt under faults and load and checks that it keeps
// its promises: a real Redis (AOF, appendfsync always) and several real
// daemons on loopback take a known set of jobs over HTTP while the run
// SIGKILLs and restarts daemons, SIGSTOPs Redis for longer than a job lease,
// restarts Redis and sends garbage. At the end every accepted job must have
// succeeded (or be dead because it always fails), no job may have run more
// often than the faults explain, the limiter must have stayed within its
// policy, and every daemon must be ready again. Soak runs steady mixed load
// and compares goroutines, heap and open descriptors at its start and end.
//
// The tests of this package run short versions in `make test`;
// scripts/chaos.sh and scripts/soak.sh run the long ones.
package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/daemontest"
	"github.com/refrakt/refrakt/internal/redistest"
)

// Options shape one chaos run.
type Options struct {
	// Daemons is how many daemons share the Redis (2 or 3).
	Daemons int
	// Jobs is how many jobs the run tries to have accepted.
	Jobs int
	// Rounds is how many times the fault sequence runs: each round kills and
	// restarts one daemon, pauses Redis for Lease+PauseExtra, restarts
	// Redis, and kills another daemon.
	Rounds int
	// Lease is the daemons' JOB_LEASE.
	Lease time.Duration
	// Concurrency is each daemon's WORKER_CONCURRENCY.
	Concurrency int
	// Rate is how many jobs per second the run submits, so that load runs
	// through every fault rather than finishing before the first.
	Rate float64
	// Settle is how long every accepted job has, after the last fault, to
	// reach a final state.
	Settle time.Duration
}

// Report is what a run did and what survived.
type Report struct {
	Daemons, Concurrency int
	Submitted            int      // POST /run requests sent
	Wanted               int      // the known set's size (Options.Jobs)
	Accepted             int      // answered 202
	Refused              []string // valid jobs answered 4xx (not 429): the run and the daemon disagree on what is valid
	Succeeded            int      // accepted jobs that succeeded with the right result
	DeadByDesign         int      // accepted `fail` jobs that ended dead
	Lost                 []string
	DaemonKills          int
	Interrupted          int // leases the killed daemons held when killed (fetched, not yet run to the end)
	RedisPauses          int
	RedisRestarts        int
	PauseLength          time.Duration
	Lease                time.Duration
	ExtraAttempts        int // attempts beyond the first of jobs that succeeded
	Recoveries           int // expired leases the daemons' ticks put back to pending, by their /metrics
	MaxExtraPerJob       int
	AttemptBound         int // ExtraAttempts may not exceed it
	Garbage              int // garbage requests sent
	GarbageWrong         []string
	ProbeAllowed         int // rl-test 200s
	ProbeLimited         int // rl-test 429s
	ProbeBound           int // ProbeAllowed may not exceed it
	HealthyAllowed       int // rl-test 200s sent and answered before the first Redis fault
	HealthyBound         int // HealthyAllowed may not exceed it: one shared bucket's policy, no outage allowance
	ProbeOther           []string
	Ready, Running       int
	Elapsed              time.Duration
}

// Failures lists every broken promise; empty means the run passed.
func (r Report) Failures() []string {
	var f []string
	if len(r.Lost) > 0 {
		f = append(f, fmt.Sprintf("%d accepted jobs lost or wrong: %s", len(r.Lost), firstN(r.Lost, 5)))
	}
	if r.Accepted == 0 {
		f = append(f, "no job was accepted")
	} else if r.Accepted < r.Wanted {
		f = append(f, fmt.Sprintf("only %d of the known set's %d jobs were accepted", r.Accepted, r.Wanted))
	}
	if len(r.Refused) > 0 {
		f = append(f, fmt.Sprintf("%d valid jobs refused: %s", len(r.Refused), firstN(r.Refused, 3)))
	}
	if r.ExtraAttempts > r.AttemptBound {
		f = append(f, fmt.Sprintf("%d extra attempts, more than the %d the faults explain", r.ExtraAttempts, r.AttemptBound))
	}
	if r.ExtraAttempts > r.Recoveries+recoverySlack {
		f = append(f, fmt.Sprintf("%d extra attempts of succeeded jobs, more than the %d expired leases the daemons recovered (each recovery is one more attempt)", r.ExtraAttempts, r.Recoveries))
	}
	if r.DaemonKills > 0 && r.Interrupted == 0 {
		f = append(f, fmt.Sprintf("none of the %d daemon kills hit a job in progress: the run tested no recovery", r.DaemonKills))
	}
	if faults := r.DaemonKills + r.RedisPauses + r.RedisRestarts; r.MaxExtraPerJob > faults {
		f = append(f, fmt.Sprintf("a job ran %d extra times, more than the %d faults", r.MaxExtraPerJob, faults))
	}
	if len(r.GarbageWrong) > 0 {
		f = append(f, fmt.Sprintf("%d garbage requests got a server error or were accepted: %s", len(r.GarbageWrong), firstN(r.GarbageWrong, 5)))
	}
	if r.ProbeAllowed > r.ProbeBound {
		f = append(f, fmt.Sprintf("the limiter allowed %d rl-test requests, over its bound %d", r.ProbeAllowed, r.ProbeBound))
	}
	if r.HealthyAllowed > r.HealthyBound {
		f = append(f, fmt.Sprintf("before any Redis fault the limiter allowed %d rl-test requests across the daemons, over one shared bucket's %d", r.HealthyAllowed, r.HealthyBound))
	}
	if r.ProbeAllowed == 0 {
		f = append(f, "the limiter probe was never allowed: the probe is not measuring anything")
	}
	if len(r.ProbeOther) > 0 {
		f = append(f, fmt.Sprintf("%d limiter probes got neither 200 nor 429: %s", len(r.ProbeOther), firstN(r.ProbeOther, 5)))
	}
	if r.Ready != r.Running {
		f = append(f, fmt.Sprintf("only %d of %d daemons ready again", r.Ready, r.Running))
	}
	return f
}

// Line is the one-line summary scripts/chaos.sh prints.
func (r Report) Line() string {
	verdict := "OK"
	if f := r.Failures(); len(f) > 0 {
		verdict = "FAIL: " + strings.Join(f, "; ")
	}
	return fmt.Sprintf("chaos: %d daemons x %d workers, %d daemon SIGKILLs+restarts, %d Redis SIGSTOPs of %s (lease %s), %d Redis restarts (AOF always), %d garbage requests; "+
		"%d jobs submitted, %d accepted, %d survived (%d succeeded, %d dead by design), %d lost; %d leases held by killed daemons; extra attempts %d (bound %d, max %d per job; %d leases recovered); "+
		"rl-test allowed %d limited %d (bound %d; before the first Redis fault %d, bound %d); %d/%d daemons ready; %s: %s",
		r.Daemons, r.Concurrency, r.DaemonKills, r.RedisPauses, r.PauseLength, r.Lease, r.RedisRestarts, r.Garbage,
		r.Submitted, r.Accepted, r.Succeeded+r.DeadByDesign, r.Succeeded, r.DeadByDesign, len(r.Lost), r.Interrupted, r.ExtraAttempts, r.AttemptBound, r.MaxExtraPerJob, r.Recoveries,
		r.ProbeAllowed, r.ProbeLimited, r.ProbeBound, r.HealthyAllowed, r.HealthyBound, r.Ready, r.Running, r.Elapsed.Round(time.Second), verdict)
}

func firstN(s []string, n int) string {
	if len(s) > n {
		return strings.Join(s[:n], ", ") + ", …"
	}
	return strings.Join(s, ", ")
}

// rl-test's built-in policy (DESIGN §3): 3 per 60 s.
const (
	probeBurst  = 3
	probeRate   = 3
	probeWindow = 60 * time.Second
)

// cluster is the Redis and the daemons of one run; the fault sequence
// replaces daemons, the load picks among the live ones.
type cluster struct {
	tb    testing.TB
	redis *redistest.Server
	env   []string

	mu        sync.Mutex
	daemons   []*daemontest.Daemon
	started   int // daemon processes started, restarts included
	recovered int // leases recovered by daemons since killed (their last count)
}

func (c *cluster) pick() *daemontest.Daemon {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.daemons[rand.IntN(len(c.daemons))]
}

func (c *cluster) all() []*daemontest.Daemon {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*daemontest.Daemon(nil), c.daemons...)
}

func (c *cluster) start() *daemontest.Daemon {
	d := daemontest.Start(c.tb, c.env)
	c.mu.Lock()
	c.started++
	c.mu.Unlock()
	return d
}

// killAndRestart SIGKILLs daemon i and starts another in its place. It
// kills once the daemon holds a lease (a job fetched, its handler not yet
// done), waiting up to killWait for one, so that the kill tests recovery:
// on an idle daemon it tests nothing. It returns how many leases the
// daemon held, by its /metrics just before the kill, and adds the leases
// it had recovered to c.recovered (its counters die with it).
func (c *cluster) killAndRestart(i int) int {
	c.mu.Lock()
	old := c.daemons[i]
	c.mu.Unlock()
	var last counts
	for deadline := time.Now().Add(killWait); ; time.Sleep(20 * time.Millisecond) {
		if n, err := daemonCounts(old.URL); err == nil {
			last = n
		}
		if last.held > 0 || time.Now().After(deadline) {
			break
		}
	}
	c.mu.Lock()
	c.recovered += last.recovered
	c.mu.Unlock()
	old.Signal(syscall.SIGKILL)
	old.Wait(10 * time.Second)
	// The dead daemon stays in the list for a moment, so the load meets
	// refused connections as real clients would.
	time.Sleep(300 * time.Millisecond)
	d := c.start()
	c.mu.Lock()
	c.daemons[i] = d
	c.mu.Unlock()
	return last.held
}

// recoverySlack is how many recoveries a run may miss: a tick's, counted
// between a daemon's last /metrics read and its kill (milliseconds apart).
const recoverySlack = 2

// recoveries is how many expired leases the run's daemons recovered: those
// the killed ones had counted, and the running ones' counts now.
func (c *cluster) recoveries() int {
	c.mu.Lock()
	n := c.recovered
	c.mu.Unlock()
	for _, d := range c.all() {
		if k, err := daemonCounts(d.URL); err == nil {
			n += k.recovered
		}
	}
	return n
}

// killWait bounds how long a kill waits for its daemon to hold a lease.
const killWait = 5 * time.Second

// counts are what a daemon's /metrics says of its leases: held, the jobs
// it fetched and has not run to the end (pending → running transitions
// less the runs its workers timed, refrakt_job_duration_seconds, one per
// handler run whatever its outcome), and recovered, the expired leases its
// ticks put back to pending (running → pending; a daemon hands none back
// otherwise in a chaos run: SIGKILL, no graceful stop).
type counts struct{ held, recovered int }

func daemonCounts(base string) (counts, error) {
	var fetched, ran, recovered float64
	err := scrape(metricsClient, base, func(series string, v float64) {
		if strings.HasPrefix(series, "refrakt_job_duration_seconds_count") {
			ran += v
			return
		}
		if !strings.HasPrefix(series, "refrakt_job_status_transitions_total{") {
			return
		}
		switch {
		case strings.Contains(series, `from_status="pending"`) && strings.Contains(series, `to_status="running"`):
			fetched += v
		case strings.Contains(series, `from_status="running"`) && strings.Contains(series, `to_status="pending"`):
			recovered += v
		}
	})
	return counts{held: int(fetched - ran), recovered: int(recovered)}, err
}

// metricsClient reads the daemons' /metrics while a kill waits.
var metricsClient = &http.Client{Timeout: time.Second}

// Run runs one chaos session and returns its report; the caller decides
// what a failure means (the test fails on any).
func Run(tb testing.TB, o Options) Report {
	tb.Helper()
	begin := time.Now()
	r := Report{Daemons: o.Daemons, Concurrency: o.Concurrency, Lease: o.Lease, PauseLength: o.Lease + time.Second}
	red := redistest.Start(tb, "--appendonly", "yes", "--appendfsync", "always")
	c := &cluster{tb: tb, redis: red, env: []string{
		"QUEUE_URL=" + red.URL(),
		"JOB_LEASE=" + o.Lease.String(),
		"TICK_INTERVAL=100ms",
		fmt.Sprintf("WORKER_CONCURRENCY=%d", o.Concurrency),
		"JOB_HISTORY=100000",
		"RATE_LIMIT_RUN_BURST=1000000",
		"RATE_LIMIT_RUN_PER_MINUTE=1000000",
		"SHUTDOWN_TIMEOUT=2s",
		"PROMETHEUS_QUEUE_POLL_INTERVAL=1s",
		// A decision that Redis answers late on a loaded machine would
		// be made by the daemon's local store, a bucket of its own, and
		// the probe's bound before the first Redis fault allows none:
		// only a Redis fault may send the limiter to its fallback.
		"RATE_LIMIT_BACKEND_TIMEOUT=2s",
	}}
	for range o.Daemons {
		c.daemons = append(c.daemons, c.start())
	}
	token := c.daemons[0].Token
	client := &http.Client{Timeout: 5 * time.Second}

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	jobs := newLedger()
	var submitted atomic.Int64
	var refused refusals

	// Submitters: the known set of jobs, over POST /run, to any daemon.
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := w; ctx.Err() == nil && jobs.accepted() < o.Jobs; n += 4 {
				spec := jobSpec(n)
				submitted.Add(1)
				d := c.pick()
				id, refusal := submit(ctx, client, d.URL, spec)
				switch {
				case id != "":
					jobs.add(id, spec)
				case refusal != "":
					refused.add(refusal)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(float64(4*time.Second) / o.Rate)):
				}
			}
		}()
	}
	// The limiter probe: rl-test, 3 per 60 s per IP, at about 10 requests/s.
	// Until the first Redis fault every daemon decides on the one shared
	// bucket, so what is allowed then, across daemons, is one bucket's
	// policy exactly (probe.healthy).
	var probe probeCounts
	probe.healthy.Store(true)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for ctx.Err() == nil {
			probe.hit(ctx, client, c.pick().URL, token)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	}()
	// Garbage: client mistakes and broken HTTP, none of which may get a 5xx
	// other than 503 (a daemon still connecting answers 503 to everything).
	var garbage garbageCounts
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			garbage.send(ctx, client, c.pick(), n)
			time.Sleep(30 * time.Millisecond)
		}
	}()

	// The faults, in the test's goroutine (daemontest and redistest fail
	// the test from here). Each waits for load to build up first.
	pause := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	var healthyFor time.Duration
	for round := range o.Rounds {
		pause(time.Second)
		r.Interrupted += c.killAndRestart(round % o.Daemons)
		r.DaemonKills++
		tb.Logf("chaos: daemon killed and restarted after %s", time.Since(begin).Round(time.Millisecond))
		pause(time.Second)
		if round == 0 {
			probe.healthy.Store(false)
			healthyFor = time.Since(begin)
		}
		red.Pause()
		time.Sleep(r.PauseLength)
		red.Resume()
		r.RedisPauses++
		pause(time.Second)
		red.Restart()
		r.RedisRestarts++
		pause(time.Second)
		r.Interrupted += c.killAndRestart((round + 1) % o.Daemons)
		r.DaemonKills++
	}
	// Keep submitting until the known set is accepted (bounded).
	deadline := time.Now().Add(o.Settle)
	for jobs.accepted() < o.Jobs && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	faultsOver := time.Now()
	tb.Logf("chaos: faults done after %s, %d accepted", faultsOver.Sub(begin).Round(time.Millisecond), jobs.accepted())
	stop()
	wg.Wait()

	r.Submitted = int(submitted.Load())
	r.Wanted = o.Jobs
	r.Refused = refused.all()
	r.Garbage = int(garbage.sent.Load())
	r.GarbageWrong = garbage.serverErrors()
	probeElapsed := time.Since(begin)
	r.ProbeAllowed, r.ProbeLimited, r.ProbeOther = probe.result()
	r.HealthyAllowed = int(probe.healthyAllowed.Load())
	r.HealthyBound = probeBurst + int(healthyFor*probeRate/probeWindow) + 1
	// GCRA allows burst + rate·elapsed/window on one store. While Redis is
	// down (paused or restarting) each daemon decides with its own local
	// store (RATE_LIMIT_ON_BACKEND_ERROR=local), which may allow up to a
	// fresh burst per daemon process per outage.
	perStore := probeBurst + int(probeElapsed*probeRate/probeWindow) + 1
	c.mu.Lock()
	processes := c.started
	c.mu.Unlock()
	r.ProbeBound = perStore + processes*(r.RedisPauses+r.RedisRestarts)*perStore

	// Every accepted job must reach a final state.
	final := jobs.await(client, c, faultsOver.Add(o.Settle))
	r.Accepted = len(final)
	faults := r.DaemonKills + r.RedisPauses + r.RedisRestarts
	// Each fault can cost at most one attempt of each job running at the
	// time: at most daemons × concurrency of them.
	r.AttemptBound = faults * o.Daemons * o.Concurrency
	for _, f := range final {
		verdict, extra := judge(f)
		switch verdict {
		case "succeeded":
			r.Succeeded++
			r.ExtraAttempts += extra
			r.MaxExtraPerJob = max(r.MaxExtraPerJob, extra)
		case "dead by design":
			r.DeadByDesign++
		default:
			r.Lost = append(r.Lost, f.spec.Type+" "+f.id+": "+verdict)
		}
	}
	tb.Logf("chaos: jobs final after %s", time.Since(begin).Round(time.Millisecond))
	r.Recoveries = c.recoveries()
	for _, d := range c.all() {
		r.Running++
		if ready(client, d.URL, 15*time.Second) {
			r.Ready++
		}
	}
	r.Elapsed = time.Since(begin)
	return r
}

// spec is one job as the run submits it.
type spec struct {
	Type       string          `json:"type"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	MaxRetries int             `json:"max_retries"`
}

// publicMaxRetries is the most max_retries POST /run takes (the daemon's
// bound of the same name): a job asking for more is refused with a 400,
// which the run counts as a failure (Report.Refused), so the known set
// cannot drift out of what the daemon accepts unseen.
const publicMaxRetries = 10

// jobSpec is the n-th job of the known set: mostly short sleeps, some
// echoes (their result must be their payload), pings, and jobs that always
// fail (they must end dead after max_retries+1 attempts, by design). The
// others have every retry a public job may have: each fault costs an
// attempt of the jobs it interrupts, and they must still succeed.
func jobSpec(n int) spec {
	switch n % 10 {
	case 0, 1:
		return spec{Type: "echo", Payload: json.RawMessage(fmt.Sprintf(`{"n":%d,"s":"chaos-%d"}`, n, n)), MaxRetries: publicMaxRetries}
	case 2:
		return spec{Type: "ping", MaxRetries: publicMaxRetries}
	case 3:
		return spec{Type: "fail", MaxRetries: 1}
	default:
		return spec{Type: "sleep", Payload: json.RawMessage(fmt.Sprintf(`{"ms":%d}`, 50+(n*37)%250)), MaxRetries: publicMaxRetries}
	}
}

// submit sends one job of the known set and returns its id when it was
// accepted. A refusal that a fault does not explain (a 4xx other than
// 429: the daemon found the job invalid) is returned as a line to report;
// a transport error, a 429 or a 5xx (a daemon killed, Redis stalled) is
// neither: the job is sent again later.
func submit(ctx context.Context, client *http.Client, base string, s spec) (id, refusal string) {
	body, _ := json.Marshal(s)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/run", bytes.NewReader(body))
	if err != nil {
		return "", ""
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			return "", fmt.Sprintf("%s: %d %s", body, resp.StatusCode, bytes.TrimSpace(msg))
		}
		return "", ""
	}
	var j struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&j); err != nil || j.ID == "" {
		return "", ""
	}
	return j.ID, ""
}

// refusals collects the known set's jobs the daemons refused as invalid.
type refusals struct {
	mu    sync.Mutex
	lines []string
}

func (r *refusals) add(line string) {
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
}

func (r *refusals) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// job is a job's state as GET /run/{id} shows it.
type job struct {
	Status    string          `json:"status"`
	Attempts  int             `json:"attempts"`
	Retries   int             `json:"retries"`
	LastError string          `json:"last_error"`
	Result    json.RawMessage `json:"result"`
}

type entry struct {
	id   string
	spec spec
	job  job
}

// ledger holds every accepted job.
type ledger struct {
	mu      sync.Mutex
	entries []*entry
}

func newLedger() *ledger { return &ledger{} }

func (l *ledger) add(id string, s spec) {
	l.mu.Lock()
	l.entries = append(l.entries, &entry{id: id, spec: s})
	l.mu.Unlock()
}

func (l *ledger) accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// await polls every accepted job until it is final or until deadline.
func (l *ledger) await(client *http.Client, c *cluster, deadline time.Time) []*entry {
	l.mu.Lock()
	all := append([]*entry(nil), l.entries...)
	l.mu.Unlock()
	open := all
	for len(open) > 0 {
		var still []*entry
		for _, e := range open {
			j, ok := getJob(client, c.pick().URL, e.id)
			if ok {
				e.job = j
			}
			if !ok || !finalStatus(e.job.Status) {
				still = append(still, e)
			}
		}
		open = still
		if len(open) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return all
}

func finalStatus(s string) bool { return s == "succeeded" || s == "dead" || s == "cancelled" }

func getJob(client *http.Client, base, id string) (job, bool) {
	resp, err := client.Get(base + "/run/" + id)
	if err != nil {
		return job{}, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return job{Status: "http " + resp.Status}, resp.StatusCode == http.StatusNotFound
	}
	var j job
	if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
		return job{}, false
	}
	return j, true
}

// judge says whether a job kept the promise, and how many attempts beyond
// the first a successful one took.
func judge(e *entry) (verdict string, extra int) {
	j := e.job
	switch {
	case e.spec.Type == "fail":
		if j.Status != "dead" {
			return "status " + j.Status + ", want dead", 0
		}
		if j.Attempts < 1 || j.Attempts > e.spec.MaxRetries+1 {
			return fmt.Sprintf("dead after %d attempts, max_retries %d", j.Attempts, e.spec.MaxRetries), 0
		}
		return "dead by design", 0
	case j.Status != "succeeded":
		return fmt.Sprintf("status %q after %d attempts (%s)", j.Status, j.Attempts, j.LastError), 0
	}
	want := ""
	switch e.spec.Type {
	case "ping":
		want = `"pong"`
	case "echo":
		want = string(e.spec.Payload)
	case "sleep":
		var p struct {
			MS int `json:"ms"`
		}
		_ = json.Unmarshal(e.spec.Payload, &p)
		want = fmt.Sprintf(`{"slept_ms":%d}`, p.MS)
	}
	if !sameJSON(want, string(j.Result)) {
		return fmt.Sprintf("result %s, want %s", j.Result, want), 0
	}
	if j.Attempts < 1 {
		return fmt.Sprintf("succeeded with %d attempts", j.Attempts), 0
	}
	return "succeeded", j.Attempts - 1
}

func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func ready(client *http.Client, base string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// probeCounts tallies the limiter probe's answers.
type probeCounts struct {
	mu               sync.Mutex
	allowed, limited int
	other            []string
	// healthy is true until the first Redis fault; healthyAllowed counts
	// the requests allowed that were sent and answered while it was.
	healthy        atomic.Bool
	healthyAllowed atomic.Int64
}

func (p *probeCounts) hit(ctx context.Context, client *http.Client, base, token string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/dev/rl-test", nil)
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+token)
	healthy := p.healthy.Load()
	resp, err := client.Do(req)
	if err != nil {
		return // a killed daemon or a stalled Redis: no decision was made
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch resp.StatusCode {
	case http.StatusOK:
		p.allowed++
		if healthy && p.healthy.Load() {
			p.healthyAllowed.Add(1)
		}
	case http.StatusTooManyRequests:
		p.limited++
	case http.StatusServiceUnavailable:
		// a daemon still connecting to Redis after a restart
	default:
		p.other = append(p.other, resp.Status)
	}
}

func (p *probeCounts) result() (int, int, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.allowed, p.limited, p.other
}

// garbageCounts tallies garbage requests and the server errors they got.
type garbageCounts struct {
	sent atomic.Int64
	mu   sync.Mutex
	bad  []string
}

func (g *garbageCounts) serverErrors() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.bad
}

// garbageBodies are client mistakes on POST /run: each must get a 4xx.
var garbageBodies = []string{
	``, `{`, `[]`, `null`, `"x"`, `{"type":"nope"}`, `{"type":"sleep","payload":{"ms":-1}}`,
	`{"type":"ping","payload":{"x":1}}`, `{"type":"echo","extra":1}`, `{"type":"echo","max_retries":"x"}`,
	`{"type":"echo","queue":"bad queue name!"}`, `{"type":"echo"}{"type":"echo"}`, "\x00\xff\xfe",
	`{"type":"sleep","payload":{"ms":1e30}}`, `{"type":"echo","delay_ms":-5}`,
}

func (g *garbageCounts) send(ctx context.Context, client *http.Client, d *daemontest.Daemon, n int) {
	g.sent.Add(1)
	if n%4 == 3 {
		// Broken HTTP straight on the socket: the server must close or
		// answer 400, and stay up.
		conn, err := net.DialTimeout("tcp", d.Addr, time.Second)
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		raw := []string{"GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "POST /run HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", "\x16\x03\x01\x00\xa5\x01\x00"}
		_, _ = conn.Write([]byte(raw[(n/4)%len(raw)]))
		buf := make([]byte, 64)
		k, _ := conn.Read(buf)
		// 505 is HTTP's own answer to an unknown version; any other 5xx is ours.
		if s := string(buf[:k]); strings.HasPrefix(s, "HTTP/1.1 5") && !strings.HasPrefix(s, "HTTP/1.1 505") {
			g.note("raw " + strings.SplitN(s, "\r\n", 2)[0])
		}
		return
	}
	body := garbageBodies[n%len(garbageBodies)]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL+"/run", strings.NewReader(body))
	if err != nil {
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
		g.note(fmt.Sprintf("POST /run %q: %s", body, resp.Status))
	}
	if resp.StatusCode == http.StatusAccepted {
		g.note(fmt.Sprintf("POST /run %q: accepted", body))
	}
}

func (g *garbageCounts) note(s string) {
	g.mu.Lock()
	g.bad = append(g.bad, s)
	g.mu.Unlock()
}
