package redisbroker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/redispipe"
)

// DefaultSweepInterval is how often a broker's Tick sweeps Redis for queues
// missing from the index (Options.SweepInterval).
const DefaultSweepInterval = 5 * time.Minute

// The index must list every queue that holds jobs, or workers never see
// them. Scripts keep it so on a single server; on a cluster a queue's keys
// and the index live in different slots, so listing a queue is a command of
// its own, after its jobs are stored (see sendEnqueues and RemoveQueue), and
// can fail, or never be sent when a process dies between the two. Two
// repairs, both run by Tick:
//
//   - recheck: the queues whose listing failed in this process. Each one
//     that still exists (its totals hash is there) is added to the index.
//   - sweep: every SweepInterval (and at a broker's first tick, so after a
//     restart), a SCAN of each master for the queues' totals hashes, adding
//     to the index any queue it lacks; in the background, bounded by
//     sweepTimeout, and after a failure again in 30 s, 1 min, … It also
//     covers daemons of an older version, whose enqueues do not list a
//     queue that a removal deleted. A queue removed while a sweep or a
//     recheck looks at it may be listed again, empty: a name, not a job.

// sweepTimeout bounds one sweep; sweepRetry is the first wait after a
// failed one (doubling up to the sweep interval).
const (
	sweepTimeout = time.Minute
	sweepRetry   = 30 * time.Second
)

// indexContext is the context of RemoveQueue's index steps, which follow a
// queue already deleted: it runs to its end whatever
// the caller's context, within a bound of its own.
func indexContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}

// recheckLater notes queues whose listing failed, for the next Tick.
func (b *Broker) recheckLater(queues ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.recheck == nil {
		b.recheck = map[string]uint64{}
	}
	b.recheckSeq++
	for _, q := range queues {
		b.recheck[q] = b.recheckSeq
		b.dropName(q) // unknown again: this broker's next enqueue there lists it too
	}
}

// relist runs the repairs that are due: the rechecks, each settled on its
// own (a queue whose master is down waits, the others do not), and, in the
// background so that it never holds up a tick, the sweep.
func (b *Broker) relist(ctx context.Context) error {
	b.mu.Lock()
	check := maps.Clone(b.recheck)
	sweep := b.sweepEvery > 0 && !b.sweeping && !time.Now().Before(b.sweepAt)
	b.sweeping = b.sweeping || sweep
	b.mu.Unlock()
	if sweep {
		go b.sweepNow()
	}
	if len(check) == 0 {
		return nil
	}
	settled, err := b.listIfExists(ctx, slices.Collect(maps.Keys(check)))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range settled {
		if b.recheck[q] == check[q] { // not failed again meanwhile
			delete(b.recheck, q)
		}
	}
	return err
}

// sweepNow runs one sweep and sets when the next is due: the interval after
// a sweep that went through, a doubling wait after one that failed.
func (b *Broker) sweepNow() {
	ctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
	defer cancel()
	err := b.sweep(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sweeping = false
	if err != nil {
		b.sweepWait = min(max(2*b.sweepWait, sweepRetry), b.sweepEvery)
		b.sweepAt = time.Now().Add(b.sweepWait)
		return
	}
	b.sweepWait = 0
	b.sweepAt = time.Now().Add(b.sweepEvery)
}

// listIfExists adds to the index those of queues whose totals hash exists,
// and returns the queues settled: known to exist and now listed, or known
// not to exist. A queue whose check failed is not settled.
func (b *Broker) listIfExists(ctx context.Context, queues []string) ([]string, error) {
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.BoolCmd, len(queues))
	for i, q := range queues {
		cmds[i] = pipe.HExists(ctx, b.keys(q).stats, "enqueued")
	}
	_, err := redispipe.Exec(ctx, pipe)
	var settled []string
	var made []any
	for i, q := range queues {
		switch {
		case cmds[i].Err() != nil:
		case cmds[i].Val():
			made = append(made, q)
		default:
			settled = append(settled, q)
		}
	}
	if len(made) > 0 {
		if e := b.rdb.SAdd(ctx, b.indexKey(), made...).Err(); e != nil {
			err = e
		} else {
			for _, q := range made {
				settled = append(settled, q.(string))
			}
		}
	}
	if err != nil {
		return settled, fmt.Errorf("relist queues: %w", err)
	}
	return settled, nil
}

// sweep adds to the index every queue whose totals hash exists on some
// master and that the index lacks.
func (b *Broker) sweep(ctx context.Context) error {
	var mu sync.Mutex
	found := map[string]bool{}
	pattern := globEscape(b.prefix) + "q:{*}:stats"
	scan := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for it.Next(ctx) {
			if q, ok := b.queueOfStats(it.Val()); ok {
				mu.Lock()
				found[q] = true
				mu.Unlock()
			}
		}
		return it.Err()
	}
	var err error
	switch c := b.rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		err = scan(ctx, c)
	default:
		return nil
	}
	if err != nil {
		return fmt.Errorf("sweep for unlisted queues: %w", err)
	}
	listed, err := b.queueNames(ctx, 0) // the index, read now (which refreshes this broker's list too)
	if err != nil {
		return fmt.Errorf("sweep for unlisted queues: %w", err)
	}
	for _, q := range listed {
		delete(found, q)
	}
	if len(found) == 0 {
		return nil
	}
	_, err = b.listIfExists(ctx, slices.Collect(maps.Keys(found)))
	return err
}

// queueOfStats returns the queue whose totals hash is key.
func (b *Broker) queueOfStats(key string) (string, bool) {
	q, ok := strings.CutPrefix(key, b.prefix+"q:{")
	if !ok {
		return "", false
	}
	q, ok = strings.CutSuffix(q, "}:stats")
	return q, ok && q != "" && !strings.ContainsAny(q, "{}")
}

// globEscape escapes the characters SCAN's MATCH treats as a pattern.
func globEscape(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}
