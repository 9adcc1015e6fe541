package scale_test

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/redistest"
)

// testMasterRestartUnderLoad: while three daemons enqueue and work jobs on
// queues of every master, the master holding the queue index is killed
// (SIGKILL) and started again on its append-only file. The cluster has no
// replica, so its slots are unavailable until it is back: enqueues to them
// fail (and are not acknowledged) meanwhile. The clients follow it back,
// its lost script cache is reloaded, and every acknowledged job succeeds:
// nothing acknowledged is lost, because the masters fsync every write
// (appendfsync always; with the default everysec, a killed master can
// lose up to a second of acknowledged writes).
func testMasterRestartUnderLoad(t *testing.T, b *backend) {
	for _, s := range b.masters {
		if _, err := redistest.Do(s.Addr(), "CONFIG", "SET", "appendfsync", "always"); err != nil {
			t.Fatal(err)
		}
	}
	// Keep every finished job, so that each acknowledged one can be checked.
	f := startFleet(t, b, 3, "JOB_LEASE=2s", "JOB_HISTORY=100000")
	names := queueNames(t, b, 3)
	var victim *redistest.Server
	for _, s := range b.masters {
		if s.Addr() == b.masterOf("refrakt:queues") {
			victim = s
		}
	}
	victimQueue := ""
	for _, q := range names {
		if b.masterOf(queueKey(q)) == victim.Addr() {
			victimQueue = q
		}
	}

	var (
		mu        sync.Mutex
		acked     []string
		afterBack atomic.Int64 // acknowledged enqueues to the victim's queue once it is back
		back      atomic.Bool
		refused   atomic.Int64
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				q := names[(g+i)%len(names)]
				r, err := f.try(f.ds[(g+i)%len(f.ds)], http.MethodPost, "/api/dev/jobs/enqueue", queue.EnqueueRequest{Type: "ping", Queue: q, MaxRetries: intp(100)})
				if err != nil || r.status != http.StatusAccepted {
					refused.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				var j queue.Job
				if err := json.Unmarshal(r.body, &j); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked = append(acked, j.ID)
				mu.Unlock()
				if q == victimQueue && back.Load() {
					afterBack.Add(1)
				}
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	down := time.Now()
	victim.Restart()
	b.cluster.WaitOK(t)
	outage := time.Since(down)
	back.Store(true)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	mu.Lock()
	ids := append([]string(nil), acked...)
	mu.Unlock()
	if len(ids) < 50 {
		t.Fatalf("only %d jobs acknowledged: the load did not run", len(ids))
	}
	if afterBack.Load() == 0 {
		t.Errorf("no enqueue to queue %s succeeded after its master came back", victimQueue)
	}
	drain := time.Now()
	f.waitSucceeded(30*time.Second, f.notYetSucceeded(names, ids))
	t.Logf("master %s restarted under load, cluster ok again after %s: %d acknowledged jobs all succeeded (drained in %s); %d enqueues refused during the outage; %d to its queue after it was back",
		victim.Addr(), outage.Round(time.Millisecond), len(ids), time.Since(drain).Round(time.Millisecond), refused.Load(), afterBack.Load())
}

// notYetSucceeded waits until the queues list no more of ids as not
// succeeded (one list call per queue instead of one read per job), up to
// 30 s, and returns the jobs of ids the succeeded lists do not name (more
// than a list holds, or not done), for waitSucceeded to look at one by one.
func (f *fleet) notYetSucceeded(queues, ids []string) []*queue.Job {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		busy := false
		done := map[string]bool{}
		for i, q := range queues {
			var doc struct {
				Jobs []*queue.Job `json:"jobs"`
			}
			d := f.ds[i%len(f.ds)]
			f.decode(f.do(d, http.MethodGet, "/api/dev/jobs?queue="+q+"&status=succeeded&limit=1000", nil), http.StatusOK, &doc)
			for _, j := range doc.Jobs {
				done[j.ID] = true
			}
			st := f.stats(d)[q]
			busy = busy || st.Pending+st.Running+st.Retry+st.Scheduled > 0
		}
		var rest []*queue.Job
		for _, id := range ids {
			if !done[id] {
				rest = append(rest, &queue.Job{ID: id})
			}
		}
		if len(rest) == 0 || !busy || time.Now().After(deadline) {
			return rest
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func intp(n int) *int { return &n }
