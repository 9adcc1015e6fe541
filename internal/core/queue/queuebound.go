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
	// known holds the queues the last read of the broker's list showed: a
	// job for one of them passes with a map read, for knownFor after the
	// read (a queue another daemon removes stops passing by then).
	known atomic.Pointer[knownQueues]
	// forgets counts forgetQueue's calls: a read that started before one
	// must not publish the queue it forgot again.
	forgets atomic.Uint64

	mu sync.Mutex // guards reserved and orders the publishing of known; never held across I/O
	// reserved are the new queues admitted here in the last reserveFor:
	// they count against the bound whether or not a read of the broker's
	// list shows them yet (their jobs may not be stored yet, or the read
	// may have started before they were), so concurrent first jobs of new
	// queues cannot slip past it together. Once expired, a reservation
	// whose enqueue failed no longer counts.
	reserved map[string]time.Time
}

// knownQueues are the names one read of the broker's list showed, and when.
type knownQueues struct {
	names map[string]bool
	at    time.Time
}

const (
	reserveFor   = 10 * time.Second
	knownFor     = 10 * time.Second
	boundMessage = "queue %q would be queue number %d: at most %d queues may exist (QUEUE_MAX_QUEUES)"
)

// admitQueue refuses, with core.CodeInvalid, a job for a new queue q that
// would take the number of queues beyond cfg.MaxQueues, and reports whether
// it reserved q (a new queue admitted), for release. A queue the last read
// showed, less than knownFor ago, costs a map read, and passes even when the
// count is over the bound (a bound lowered, or passed by two daemons at
// once). Any other reads the broker's list, one round trip (about what
// storing the job would have cost): it may have been made a moment ago by
// an operator or another daemon, and only a read started after the request
// came can say.
// The read is made without holding the lock, so a slow backend delays only
// the requests that wait for it.
func (s *Service) admitQueue(ctx context.Context, q string) (bool, error) {
	limit := s.cfg.MaxQueues
	b := &s.bound
	if limit <= 0 {
		return false, nil
	}
	if k := b.known.Load(); k != nil && k.names[q] && time.Since(k.at) < knownFor {
		return false, nil
	}
	forgets := b.forgets.Load()
	names, err := s.broker.Queues(ctx)
	if err != nil {
		return false, s.backendErr("queues", err)
	}
	listed := make(map[string]bool, len(names))
	for _, n := range names {
		listed[n] = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.forgets.Load() == forgets {
		b.known.Store(&knownQueues{names: listed, at: time.Now()})
	}
	if listed[q] {
		return false, nil
	}
	// A reservation stays until it expires, even once its queue is listed:
	// a request whose read started before the queue was stored must still
	// count it.
	now := time.Now()
	count := len(listed)
	for r, at := range b.reserved {
		switch {
		case now.Sub(at) > reserveFor:
			delete(b.reserved, r)
		case r == q:
			return false, nil // admitted by another request a moment ago
		case !listed[r]:
			count++
		}
	}
	if count >= limit {
		return false, core.Errorf(core.CodeInvalid, boundMessage, q, count+1, limit)
	}
	if b.reserved == nil {
		b.reserved = map[string]time.Time{}
	}
	b.reserved[q] = now
	return true, nil
}

// releaseQueue undoes admitQueue's reservation of q when its job was not
// stored after all (admission control refused it).
func (s *Service) releaseQueue(q string) {
	s.bound.mu.Lock()
	defer s.bound.mu.Unlock()
	delete(s.bound.reserved, q)
}

// forgetQueue drops a removed queue from the last read, so that a new job
// for it counts against the bound again.
func (s *Service) forgetQueue(q string) {
	b := &s.bound
	b.mu.Lock()
	defer b.mu.Unlock()
	b.forgets.Add(1)
	delete(b.reserved, q)
	if k := b.known.Load(); k != nil && k.names[q] {
		names := maps.Clone(k.names)
		delete(names, q)
		b.known.Store(&knownQueues{names: names, at: k.at})
	}
}
