package redisstore

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/redispipe"
)

// indexBatch is what a round trip must add to the recently-active and
// penalized indexes.
type indexBatch struct {
	now         int64
	active, pen []redis.Z
	// bans are new bans: keys by the end of their ban.
	bans  []redis.Z
	ended []any
}

func (b *indexBatch) empty() bool {
	return len(b.active) == 0 && len(b.pen) == 0 && len(b.ended) == 0 && len(b.bans) == 0
}

// indexUpdates collects the index updates due with groups: each key at most
// once per second from this process, and the penalties recorded since the
// last round trip.
func (s *Store) indexUpdates(groups []*group) indexBatch {
	b := indexBatch{now: time.Now().UnixMicro()}
	if s.opts.Clock != nil {
		b.now = s.opts.Clock.Now().UnixMicro()
	}
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	for _, g := range groups {
		for i := range g.ops {
			k := g.ops[i].key
			if last, ok := s.indexed[k]; ok && b.now-last < 1e6 && b.now >= last {
				continue
			}
			s.indexed[k] = b.now
			b.active = append(b.active, redis.Z{Score: float64(b.now), Member: k})
		}
	}
	if len(s.indexed) > 4*s.opts.IndexSize {
		clear(s.indexed)
	}
	for k, end := range s.penalized {
		if end < 0 {
			b.ended = append(b.ended, k)
			continue
		}
		b.pen = append(b.pen, redis.Z{Score: float64(end), Member: k})
	}
	clear(s.penalized)
	for k, end := range s.banned {
		b.bans = append(b.bans, redis.Z{Score: float64(end), Member: k})
	}
	clear(s.banned)
	return b
}

// queue adds the updates to pipe: the indexes are keys of their own, written
// by their own commands, so that no script ever touches two slots.
func (b *indexBatch) queue(ctx context.Context, pipe redis.Pipeliner, s *Store) {
	if len(b.active) > 0 {
		pipe.ZAdd(ctx, s.keyActive, b.active...)
		pipe.ZRemRangeByRank(ctx, s.keyActive, 0, int64(-s.opts.IndexSize-1))
	}
	if len(b.ended) > 0 {
		pipe.ZRem(ctx, s.keyPenalized, b.ended...)
	}
	if len(b.pen) > 0 {
		pipe.ZAdd(ctx, s.keyPenalized, b.pen...)
		pipe.ZRemRangeByScore(ctx, s.keyPenalized, "-inf", strconv.FormatInt(b.now, 10))
	}
	if len(b.bans) > 0 {
		pipe.ZAdd(ctx, s.keyBanned, b.bans...)
		pipe.ZRemRangeByScore(ctx, s.keyBanned, "-inf", strconv.FormatInt(b.now, 10))
	}
}

// maxIndexBacklog bounds the index batches a Cluster's writer holds while
// the indexes' master does not answer; beyond it the oldest batch's
// recently-active keys are dropped (each key is indexed again at its next
// decision, a second later at most), and its penalties and bans go on with
// the next batch (a ban is reported once).
const maxIndexBacklog = 64

// indexWriter writes a Cluster's index updates in round trips of their own,
// in the order they were collected, one at a time. In a decision's round
// trip they would make it wait for the indexes' master, and a master that
// does not answer in time fails every command of a Cluster pipeline that
// the client retries, those of the masters that answered included.
type indexWriter struct {
	mu      sync.Mutex
	backlog []indexBatch
	running bool
	// added counts the batches given, written those written (or given up);
	// progress is closed, and replaced, whenever written moves.
	added, written uint64
	progress       chan struct{}
}

// add gives b to the writer, starting it when it is not running.
func (w *indexWriter) add(s *Store, b indexBatch) {
	if b.empty() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.backlog) >= maxIndexBacklog {
		old, next := &w.backlog[0], &w.backlog[1]
		next.pen = append(next.pen, old.pen...)
		next.bans = append(next.bans, old.bans...)
		next.ended = append(next.ended, old.ended...)
		w.backlog = w.backlog[1:]
	}
	w.backlog = append(w.backlog, b)
	w.added++
	if w.progress == nil {
		w.progress = make(chan struct{})
	}
	if !w.running {
		w.running = true
		go w.run(s)
	}
}

// run writes the backlog until it is empty.
func (w *indexWriter) run(s *Store) {
	for {
		w.mu.Lock()
		batches, upTo := w.backlog, w.added
		w.backlog = nil
		if len(batches) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
		pipe := s.rdb.Pipeline()
		for i := range batches {
			batches[i].queue(ctx, pipe, s)
		}
		_, _ = redispipe.Exec(ctx, pipe) // best effort, as in a decision's round trip
		cancel()
		w.mu.Lock()
		w.written = upTo
		close(w.progress)
		w.progress = make(chan struct{})
		w.mu.Unlock()
	}
}

// wait returns once the batches given before it are written (or given
// up), or ctx ends: not the ones given meanwhile, which under steady
// traffic never stop coming.
func (w *indexWriter) wait(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for target := w.added; w.written < target; {
		ch := w.progress
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			w.mu.Lock()
			return
		}
		w.mu.Lock()
	}
}

// forget drops key's penalty end and ban from the batches not yet written
// (a reset: recorded after it, they would list the key again).
func (w *indexWriter) forget(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	isKey := func(z redis.Z) bool { return z.Member == key }
	for i := range w.backlog {
		b := &w.backlog[i]
		b.pen = slices.DeleteFunc(b.pen, isKey)
		b.bans = slices.DeleteFunc(b.bans, isKey)
	}
}
