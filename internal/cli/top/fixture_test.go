package top

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// fixedClock is a Clock that says t0 plus one second per call, so each
// refresh of a test has its own, predictable time.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fixedClock {
	return &fixedClock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// result is one scripted answer of a scriptSource.
type result struct {
	snap snapshot.Snapshot
	err  error
}

// scriptSource answers Fetch with its results in turn, repeating the last,
// and records the actions asked of it.
type scriptSource struct {
	mu        sync.Mutex
	results   []result
	calls     int
	actionErr error
	resets    []string
	// bans are the BanBucket calls, "KEY for D".
	bans     []string
	requeues []string
	// allDead are the queues RequeueAllDead was asked; it answers moved.
	allDead []string
	moved   int
	// pauses are the SetQueuePaused calls, "pause Q" or "resume Q"; they
	// answer changed unless unchanged is set.
	pauses    []string
	unchanged bool
}

func (s *scriptSource) Name() string { return "http://127.0.0.1:8080" }

func (s *scriptSource) Fetch(ctx context.Context) (snapshot.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.results[min(s.calls, len(s.results)-1)]
	s.calls++
	return r.snap, r.err
}

func (s *scriptSource) ResetBucket(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resets = append(s.resets, key)
	return s.actionErr
}

func (s *scriptSource) BanBucket(ctx context.Context, key string, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bans = append(s.bans, key+" for "+d.String())
	return s.actionErr
}

func (s *scriptSource) RequeueJob(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requeues = append(s.requeues, id)
	return s.actionErr
}

func (s *scriptSource) RequeueAllDead(ctx context.Context, q string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allDead = append(s.allDead, q)
	return s.moved, s.actionErr
}

func (s *scriptSource) SetQueuePaused(ctx context.Context, q string, paused bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	verb := "resume "
	if paused {
		verb = "pause "
	}
	s.pauses = append(s.pauses, verb+q)
	return !s.unchanged, s.actionErr
}

// roleSource is a scriptSource that says its token's role.
type roleSource struct {
	*scriptSource
	role string
	err  error
}

func (s roleSource) Role(context.Context) (string, error) { return s.role, s.err }

// readOnlySource is a Source without actions.
type readOnlySource struct{ snap snapshot.Snapshot }

func (s readOnlySource) Name() string { return "redis://127.0.0.1:6379" }

func (s readOnlySource) Fetch(context.Context) (snapshot.Snapshot, error) { return s.snap, nil }

// directSource is a read-only Source with no daemon behind it, as
// `refrakt top --redis` reads.
type directSource struct{ readOnlySource }

func (directSource) Direct() bool { return true }

// loadSnapshot reads testdata/snapshot.json: three queues (default refused
// by admission control), two dead jobs, four buckets (one banned), two
// overrides, generated at 10:00:00 UTC.
func loadSnapshot(t testing.TB) snapshot.Snapshot {
	t.Helper()
	data, err := os.ReadFile("testdata/snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	var s snapshot.Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// later returns s as the daemon would report it d later with n more jobs
// enqueued and finished per queue.
func later(s snapshot.Snapshot, d time.Duration, n int64) snapshot.Snapshot {
	s.GeneratedAt = s.GeneratedAt.Add(d)
	s.Daemon.UptimeSeconds += d.Seconds()
	qs := make([]snapshot.Queue, len(s.Queues))
	for i, q := range s.Queues {
		q.EnqueuedTotal += n
		q.SucceededTotal += n
		qs[i] = q
	}
	s.Queues = qs
	return s
}

// withDeadJob returns s with a dead job id, newer than the others, first.
func withDeadJob(s snapshot.Snapshot, id string) snapshot.Snapshot {
	j := snapshot.DeadJob{ID: id, Queue: "default", Type: "fail", Attempts: 1, LastError: "boom", FinishedAt: s.GeneratedAt}
	s.DeadJobs = append([]snapshot.DeadJob{j}, s.DeadJobs...)
	return s
}

// withoutDeadJob returns s without the dead job id.
func withoutDeadJob(s snapshot.Snapshot, id string) snapshot.Snapshot {
	s.DeadJobs = slices.DeleteFunc(slices.Clone(s.DeadJobs), func(j snapshot.DeadJob) bool { return j.ID == id })
	return s
}

var errRefused = core.Wrap(core.CodeUnavailable, errors.New("dial tcp 127.0.0.1:8080: connect: connection refused"), "connection refused")

// pressKeys shows snap on a model reading script (as a source whose token
// has role, when role is given: the model asks it first), presses keys,
// and delivers the outcome of an action they started, as the program
// would.
func pressKeys(t *testing.T, script *scriptSource, snap snapshot.Snapshot, role string, keys []string) Model {
	t.Helper()
	var src Source = script
	if role != "" {
		src = roleSource{scriptSource: script, role: role}
	}
	var m tea.Model = New(context.Background(), src, Options{Clock: newClock(), NoColor: true})
	m, cmd := m.Update(fetchedMsg{snap: snap})
	if role != "" {
		m, _ = m.Update(firstMsg[roleMsg](t, cmd))
	}
	for _, k := range keys {
		m, cmd = m.Update(press(k))
	}
	if m.(Model).status == "working…" {
		m, _ = m.Update(cmd())
	}
	return m.(Model)
}
