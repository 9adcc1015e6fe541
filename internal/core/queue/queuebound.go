package queue

import (
	"context"
	"maps"
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

	mu sync.Mutex // guards reserved and publishes known; never held across I/O
	// reserved are the new queues admitted here in the last reserveFor:
	// they count against the bound whether or not a read of the broker's
	// list shows them yet (their jobs may not be stored yet, or the read
	// may have started before they were), so concurrent first jobs of new
	// queues cannot slip past it together. Once expired, a reservation
	// whose enqueue failed no longer counts.
	reserved map[string]time.Time
}

const (
	reserveFor   = 10 * time.Second
	boundMessage = "queue %q would be queue number %d: at most %d queues may exist (QUEUE_MAX_QUEUES)"
)

// admitQueue refuses, with core.CodeInvalid, a job for a new queue q that
// would take the number of queues beyond cfg.MaxQueues, and reports whether
// it reserved q (a new queue admitted), for release. A queue seen before
// costs a map read, and passes even when the count is over the bound (a
// bound lowered, or passed by two daemons at once). A queue not seen
// before reads the broker's list, one round trip (about what storing the
// job would have cost): it may have been made a moment ago by an operator or
// another daemon, and only a read started after the request came can say.
// The read is made without holding the lock, so a slow backend delays only
// the requests that wait for it.
func (s *Service) admitQueue(ctx context.Context, q string) (bool, error) {
	limit := s.cfg.MaxQueues
	b := &s.bound
	if limit <= 0 {
		return false, nil
	}
	if known := b.known.Load(); known != nil && (*known)[q] {
		return false, nil
	}
	names, err := s.broker.Queues(ctx)
	if err != nil {
		return false, s.backendErr("queues", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	set := make(map[string]bool, len(names)+len(b.reserved)+1)
	for _, n := range names {
		set[n] = true
	}
	// A reservation stays until it expires, even once its queue shows in
	// a list: a request whose read started before the queue was stored
	// must still count it.
	for r, at := range b.reserved {
		if now.Sub(at) > reserveFor {
			delete(b.reserved, r)
		} else {
			set[r] = true
		}
	}
	if set[q] {
		b.known.Store(&set)
		return false, nil
	}
	if len(set) >= limit {
		b.known.Store(&set)
		return false, core.Errorf(core.CodeInvalid, boundMessage, q, len(set)+1, limit)
	}
	if b.reserved == nil {
		b.reserved = map[string]time.Time{}
	}
	b.reserved[q] = now
	set[q] = true
	b.known.Store(&set)
	return true, nil
}

// releaseQueue undoes admitQueue's reservation of q when its job was not
// stored after all (admission control refused it).
func (s *Service) releaseQueue(q string) {
	b := &s.bound
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.reserved[q]; !ok {
		return
	}
	delete(b.reserved, q)
	if known := b.known.Load(); known != nil {
		set := maps.Clone(*known)
		delete(set, q)
		b.known.Store(&set)
	}
}

// sawQueue records that q exists (a job was just stored in it), so that
// the public's jobs for a queue an operator made through this service pass
// without a read of the queue list.
func (s *Service) sawQueue(q string) {
	b := &s.bound
	if s.cfg.MaxQueues <= 0 {
		return
	}
	if known := b.known.Load(); known != nil && (*known)[q] {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	set := map[string]bool{}
	if known := b.known.Load(); known != nil {
		set = maps.Clone(*known)
	}
	set[q] = true
	b.known.Store(&set)
}
