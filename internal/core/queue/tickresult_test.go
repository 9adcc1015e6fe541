package queue_test

import (
	"fmt"
	"testing"

	"github.com/refrakt/refrakt/internal/core/queue"
)

// TestTickResultAddCopiesNothingForNoDeath (a code review's test): the Redis
// broker sums one TickResult per queue, most of them naming no dead job. Add
// built a new Dead slice on every call, copying every job named so far: one
// allocation per queue, and queues × dead jobs copied.
func TestTickResultAddCopiesNothingForNoDeath(t *testing.T) {
	total := queue.TickResult{}
	for i := range 1000 {
		total.Dead = append(total.Dead, queue.DeadJob{ID: fmt.Sprint(i), Queue: "q", Type: "sleep", Attempts: 1, LastError: queue.LeaseExpired})
	}
	nothingDead := queue.TickResult{Scheduled: 1}
	if n := testing.AllocsPerRun(100, func() { total = total.Add(nothingDead) }); n != 0 {
		t.Errorf("adding a result that names no dead job to one that names 1000: %v allocations per Add, want 0", n)
	}
	// Both naming jobs: the sum names all of them, and neither side's
	// slice is written to.
	a := queue.TickResult{RecoveredDead: 1, Dead: make([]queue.DeadJob, 1, 8)}
	a.Dead[0].ID = "a"
	b := queue.TickResult{RecoveredDead: 1, Dead: []queue.DeadJob{{ID: "b"}}}
	c := queue.TickResult{RecoveredDead: 1, Dead: []queue.DeadJob{{ID: "c"}}}
	ab, ac := a.Add(b), a.Add(c)
	if len(ab.Dead) != 2 || ab.Dead[1].ID != "b" || len(ac.Dead) != 2 || ac.Dead[1].ID != "c" || ab.RecoveredDead != 2 {
		t.Errorf("a+b = %+v, a+c = %+v; want each to name its two jobs", ab, ac)
	}
	if r := (queue.TickResult{}).Add(queue.TickResult{}); r.Dead != nil {
		t.Errorf("the sum of two results naming no job names %v, want nil (no dead_jobs in JSON)", r.Dead)
	}
}
