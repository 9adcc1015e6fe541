package redisstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/redispipe"
)

// Snapshot implements ratelimit.Store from the two bounded indexes; it never
// scans the keyspace.
func (s *Store) Snapshot(ctx context.Context, r *ratelimit.Rules, n int) (ratelimit.StoreSnapshot, error) {
	var out ratelimit.StoreSnapshot
	// Record penalties still waiting for a round trip: on a Cluster through
	// its index writer, in order, waiting for those of the decisions made
	// so far.
	pipe := s.rdb.Pipeline()
	if s.cluster != nil {
		s.iw.add(s, s.indexUpdates(nil))
		s.iw.wait(ctx)
	} else {
		idx := s.indexUpdates(nil)
		idx.queue(ctx, pipe, s)
	}
	now, err := s.now(ctx)
	if err != nil {
		return out, err
	}
	nows := strconv.FormatInt(now, 10)
	pipe.ZRemRangeByScore(ctx, s.keyPenalized, "-inf", nows)
	pipe.ZRemRangeByScore(ctx, s.keyBanned, "-inf", nows)
	count := pipe.ZCount(ctx, s.keyPenalized, "("+nows, "+inf")
	var recent, pen, bans *redis.StringSliceCmd
	if n > 0 {
		recent = pipe.ZRevRange(ctx, s.keyActive, 0, int64(n-1))
		// The banned first (the latest to end first), then the others by
		// when their penalty ends: a strike given now ends after a ban
		// given a while ago, so the penalty index alone would let many
		// struck keys push a banned one out.
		bans = pipe.ZRevRangeByScore(ctx, s.keyBanned, &redis.ZRangeBy{Min: "(" + nows, Max: "+inf", Count: int64(n)})
		pen = pipe.ZRevRangeByScore(ctx, s.keyPenalized, &redis.ZRangeBy{Min: "(" + nows, Max: "+inf", Count: int64(n)})
	}
	if _, err := redispipe.Exec(ctx, pipe); err != nil {
		return out, wrap(err, "snapshot")
	}
	out.PenalizedKeys = int(count.Val())
	if n == 0 {
		return out, nil
	}
	penalized := bans.Val()
	for _, k := range pen.Val() {
		if !slices.Contains(penalized, k) {
			penalized = append(penalized, k)
		}
	}
	if out.Recent, out.Penalized, err = s.states(ctx, r, now, recent.Val(), penalized); err != nil {
		return out, err
	}
	out.Penalized = slices.DeleteFunc(out.Penalized, func(b ratelimit.BucketState) bool {
		return b.Strikes == 0 && b.BannedUntil.IsZero()
	})
	slices.SortFunc(out.Penalized, ratelimit.ByPenalty)
	out.Penalized = out.Penalized[:min(n, len(out.Penalized))]
	return out, nil
}

// now is the store's time: the test clock, or Redis TIME.
func (s *Store) now(ctx context.Context) (int64, error) {
	if s.opts.Clock != nil {
		return s.opts.Clock.Now().UnixMicro(), nil
	}
	t, err := s.rdb.Time(ctx).Result()
	if err != nil {
		return 0, wrap(err, "time")
	}
	return t.UnixMicro(), nil
}

// states reads the cells of the recent and the penalized keys in one round
// trip and returns those still held, each list most recently active first.
func (s *Store) states(ctx context.Context, r *ratelimit.Rules, now int64, recent, pen []string) (rs, ps []ratelimit.BucketState, err error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(recent)+len(pen))
	for i, k := range slices.Concat(recent, pen) {
		cmds[i] = pipe.Get(ctx, s.bucketKey(k))
	}
	if _, err := redispipe.Exec(ctx, pipe); err != nil && err != redis.Nil {
		return nil, nil, wrap(err, "snapshot")
	}
	return cellStates(r, now, recent, cmds[:len(recent)]), cellStates(r, now, pen, cmds[len(recent):]), nil
}

// cellStates decodes the replies of keys, skipping the keys gone since they
// were indexed, most recently active first.
func cellStates(r *ratelimit.Rules, now int64, keys []string, cmds []*redis.StringCmd) []ratelimit.BucketState {
	out := make([]ratelimit.BucketState, 0, len(keys))
	for i, k := range keys {
		c, ok := decodeCell(cmds[i].Val())
		if !ok {
			continue // expired since it was indexed
		}
		out = append(out, c.State(k, r, now))
	}
	slices.SortStableFunc(out, func(a, b ratelimit.BucketState) int {
		return cmp.Compare(b.LastSeen.UnixMicro(), a.LastSeen.UnixMicro())
	})
	return out
}

// decodeCell decodes a key's state as take.lua stores it: nine
// little-endian doubles. It reports false for anything else (a key gone).
func decodeCell(v string) (ratelimit.Cell, bool) {
	if len(v) != 9*8 {
		return ratelimit.Cell{}, false
	}
	var f [9]int64
	for j := range f {
		f[j] = int64(float64At(v, 8*j))
	}
	return ratelimit.Cell{TAT: f[0], Interval: f[1], Capacity: int(f[2]), Strikes: int(f[3]), StrikeAt: f[4],
		BannedUntil: f[5], BanLevel: int(f[6]), LastBan: f[7], Seen: f[8]}, true
}

// Peek implements ratelimit.Store with peek.lua: one read-only call to the
// server that holds key, for its state and that server's time (the test
// clock when Options.Clock is set, as decisions take it).
func (s *Store) Peek(ctx context.Context, key string) (ratelimit.Cell, int64, bool, error) {
	reply, err := s.peek.Run(ctx, s.rdb, []string{s.bucketKey(key)}).Slice()
	if err != nil {
		return ratelimit.Cell{}, 0, false, wrap(err, "peek "+key)
	}
	if len(reply) < 2 {
		return ratelimit.Cell{}, 0, false, wrap(fmt.Errorf("peek.lua answered %d values, want 2 (no state) or 3", len(reply)), "peek "+key)
	}
	var now int64
	if s.opts.Clock != nil {
		now = s.opts.Clock.Now().UnixMicro()
	} else {
		sec, err1 := strconv.ParseInt(fmt.Sprint(reply[0]), 10, 64)
		usec, err2 := strconv.ParseInt(fmt.Sprint(reply[1]), 10, 64)
		if err1 != nil || err2 != nil {
			return ratelimit.Cell{}, 0, false, wrap(fmt.Errorf("peek.lua answered a time of %v %v", reply[0], reply[1]), "peek "+key)
		}
		now = sec*1e6 + usec
	}
	var raw string
	if len(reply) > 2 {
		raw, _ = reply[2].(string)
	}
	c, found := decodeCell(raw)
	return c, now, found, nil
}
