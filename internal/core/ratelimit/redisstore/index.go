package redisstore

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
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
