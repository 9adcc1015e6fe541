package queue

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/refrakt/refrakt/internal/core"
)

// queueBound is the state behind Config.MaxQueues.
type queueBound struct {
	// known holds the queues seen to exist or admitted here: a job for one
	// of them passes with a map read.
	known atomic.Pointer[map[string]bool]

	mu sync.Mutex // serializes the broker reads for new queues
	// reserved are the new queues admitted here and not yet seen in the
	// broker's list: they count against the bound until they are (their
	// jobs stored) or reserveFor has passed (their enqueue failed), so
	// concurrent first jobs of new queues cannot slip past it together.
	reserved map[string]time.Time
	// fullAt is when a read last found the bound reached: for a second
	// after it, a new queue is refused without asking the broker again.
	fullAt time.Time
}

const (
	reserveFor   = 10 * time.Second
	fullRecheck  = time.Second
	boundMessage = "queue %q would be queue number %d: at most %d queues may exist (QUEUE_MAX_QUEUES)"
)

// admitQueues refuses jobs that would take the number of queues beyond
// cfg.MaxQueues, with core.CodeInvalid. A job for a queue seen before costs
// a map read; one for a new queue reads the broker's list (one round trip),
// so only a queue's first jobs pay for the check, and while the bound is
// reached a flood of new names costs no round trip at all.
func (s *Service) admitQueues(ctx context.Context, jobs []NewJob) error {
	limit := s.cfg.MaxQueues
	if limit <= 0 {
		return nil
	}
	b := &s.bound
	var fresh []string
	known := b.known.Load()
	for _, nj := range jobs {
		if (known == nil || !(*known)[nj.Queue]) && !slices.Contains(fresh, nj.Queue) {
			fresh = append(fresh, nj.Queue)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if known = b.known.Load(); known != nil && now.Sub(b.fullAt) < fullRecheck {
		for _, q := range fresh {
			if !(*known)[q] {
				return core.Errorf(core.CodeInvalid, boundMessage, q, len(*known)+1, limit)
			}
		}
		return nil
	}
	names, err := s.broker.Queues(ctx)
	if err != nil {
		return s.backendErr("queues", err)
	}
	set := make(map[string]bool, len(names)+len(b.reserved)+len(fresh))
	for _, q := range names {
		set[q] = true
	}
	for q, at := range b.reserved {
		if set[q] || now.Sub(at) > reserveFor {
			delete(b.reserved, q)
		} else {
			set[q] = true
		}
	}
	var added []string
	for _, q := range fresh {
		if !set[q] {
			added = append(added, q)
		}
	}
	if len(set)+len(added) > limit {
		b.fullAt = now
		b.known.Store(&set)
		return core.Errorf(core.CodeInvalid, boundMessage, added[0], len(set)+1, limit)
	}
	if b.reserved == nil {
		b.reserved = map[string]time.Time{}
	}
	for _, q := range added {
		set[q] = true
		b.reserved[q] = now
	}
	b.known.Store(&set)
	return nil
}
