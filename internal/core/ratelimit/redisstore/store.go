// Package redisstore is the Redis ratelimit.Store, shared by every daemon and
// CLI on one Redis. Each key's decision is made by a Lua script (take.lua) run
// with EVALSHA (NOSCRIPT falls back to loading it), touching only that key,
// whose name carries the key as hash tag so that a Redis Cluster keeps it in
// one slot. Concurrent decisions are coalesced: while a round trip is in
// flight, the decisions that arrive meanwhile wait and go together in the
// next, as a pipeline of script calls (decisions of one slot share a call).
// That changes no decision (each key is still decided atomically) but saves
// round trips and system calls on both sides.
//
// A caller never waits longer than its context allows, even on a client
// whose sockets ignore context deadlines; with ContextTimeoutEnabled set on
// the client, a lone caller also skips the hand-off to a flusher.
//
// Layout (prefix "refrakt:" by default):
//
//	<prefix>rl:{<limit>:<scope>:<identity>}  string: the key's GCRA, strikes and ban; TTL'd
//	<prefix>rl:active                        zset: recently active keys by last use, bounded
//	<prefix>rl:penalized                     zset: keys with strikes or a ban, by when they end
//	<prefix>rl:overrides                     hash: target → override (JSON)
//	<prefix>rl:overrides:changed             pub/sub channel: an override changed
package redisstore

import (
	"context"
	_ "embed"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

var _ ratelimit.Store = (*Store)(nil)

var (
	//go:embed take.lua
	takeSource string
	//go:embed refund.lua
	refundSource string
)

// Options tune a Store. The zero value gives the defaults.
type Options struct {
	// Prefix starts every key (REFRAKT_PREFIX, default "refrakt:").
	Prefix string
	// Clock, when set, supplies "now" to the scripts instead of Redis TIME,
	// for deterministic tests. Production leaves it nil.
	Clock ratelimit.Clock
	// Timeout bounds a coalesced round trip (default 100ms, like
	// RATE_LIMIT_BACKEND_TIMEOUT); each caller's own context bounds its wait.
	Timeout time.Duration
	// Flushers is how many coalesced round trips may be in flight at once
	// (default 2).
	Flushers int
	// IndexSize bounds the recently-active index (default 1000).
	IndexSize int
}

// Store is the Redis store. Close it to stop its flushers.
type Store struct {
	rdb    redis.UniversalClient
	opts   Options
	take   *redis.Script
	refund *redis.Script

	keyActive, keyPenalized, keyOverrides, chanOverrides string

	b batcher
	// direct says the client honours context deadlines on its sockets, so a
	// lone caller may run its round trip on its own goroutine.
	direct bool

	// indexed throttles the recently-active index to one update per key
	// and second from this process.
	idxMu   sync.Mutex
	indexed map[string]int64
	// penalized are keys whose penalty end must still be recorded; they go
	// with the next round trip.
	penalized map[string]int64

	rules atomic.Pointer[rulesCache]
}

// New returns a Store on rdb (a single client, or a cluster client later).
func New(rdb redis.UniversalClient, o Options) *Store {
	if o.Prefix == "" {
		o.Prefix = "refrakt:"
	}
	if o.Timeout <= 0 {
		o.Timeout = 100 * time.Millisecond
	}
	if o.Flushers <= 0 {
		o.Flushers = 2
	}
	if o.IndexSize <= 0 {
		o.IndexSize = 1000
	}
	s := &Store{
		rdb: rdb, opts: o,
		take:          redis.NewScript(takeSource),
		refund:        redis.NewScript(refundSource),
		keyActive:     o.Prefix + "rl:active",
		keyPenalized:  o.Prefix + "rl:penalized",
		keyOverrides:  o.Prefix + "rl:overrides",
		chanOverrides: o.Prefix + "rl:overrides:changed",
		indexed:       map[string]int64{},
		penalized:     map[string]int64{},
	}
	switch c := rdb.(type) {
	case *redis.Client:
		s.direct = c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		s.direct = c.Options().ContextTimeoutEnabled
	}
	s.b.start(s, o.Flushers)
	return s
}

// Close stops the flushers. It does not close the Redis client.
func (s *Store) Close() error {
	s.b.stop()
	return nil
}

// bucketKey is the Redis key of a bucket key; the braces are its hash tag.
func (s *Store) bucketKey(key string) string {
	return s.opts.Prefix + "rl:{" + key + "}"
}

// op is one key's decision within a request.
type op struct {
	key    string // the bucket key, "run:ip:203.0.113.7"
	rkey   string
	kargs  [4]any // capacity, interval, window, shadow
	res    ratelimit.Result
	pend   int64 // penalty end, Unix µs
	err    error
	bucket *ratelimit.Bucket
}

// group is one request's ops; they travel in the same round trip.
type group struct {
	ops   []op
	now   string // "" for Redis TIME
	rules []any  // the rules' script arguments
	done  chan struct{}
	// abandoned says the caller stopped waiting (its context ended): a
	// flusher that has not sent it yet drops it, so a request answered
	// otherwise (by the fallback) never spends tokens later.
	abandoned atomic.Bool
}

// Take implements ratelimit.Store. The keys of a request go in one round
// trip, each decided by its own script; when one denies, the tokens the
// others took are given back (a second round trip, only then). Between the
// two, a concurrent request may see those tokens spent; on a single Redis
// this is the only difference from the memory store's all-or-nothing.
func (s *Store) Take(ctx context.Context, r *ratelimit.Rules, bs []ratelimit.Bucket, rs []ratelimit.Result) error {
	now := ""
	if s.opts.Clock != nil {
		now = strconv.FormatInt(s.opts.Clock.Now().UnixMicro(), 10)
	}
	g := &group{ops: make([]op, len(bs)), now: now, rules: s.rulesArgs(r), done: make(chan struct{})}
	for i := range bs {
		b := &bs[i]
		shadow := "0"
		if b.Shadow {
			shadow = "1"
		}
		key := string(b.Key)
		g.ops[i] = op{key: key, rkey: s.bucketKey(key), bucket: b, kargs: [4]any{b.Capacity, b.Interval, b.Window, shadow}}
	}
	if err := s.b.do(ctx, g); err != nil {
		return err
	}
	denied, took := false, false
	for i := range g.ops {
		o := &g.ops[i]
		if o.err != nil {
			return o.err
		}
		rs[i] = o.res
		if !o.res.Allowed {
			denied = true
		} else if !o.res.Shadowed {
			took = true
		}
	}
	if denied && took {
		s.giveBack(ctx, g, rs)
	}
	return nil
}

// rulesArgs returns the script arguments of r, formatted once per rules.
func (s *Store) rulesArgs(r *ratelimit.Rules) []any {
	if c := s.rules.Load(); c != nil && c.r == *r {
		return c.args
	}
	c := &rulesCache{r: *r, args: []any{
		strconv.FormatFloat(r.PenaltyFactor, 'g', -1, 64), strconv.FormatInt(r.DecayMicros, 10), strconv.Itoa(r.BanAfter),
		strconv.FormatInt(r.BanMicros, 10), strconv.FormatInt(r.BanMaxMicros, 10), strconv.FormatInt(r.RepeatMicros, 10),
	}}
	s.rules.Store(c)
	return c.args
}

type rulesCache struct {
	r    ratelimit.Rules
	args []any
}

// giveBack returns the tokens of the buckets that allowed a denied request.
func (s *Store) giveBack(ctx context.Context, g *group, rs []ratelimit.Result) {
	pipe := s.rdb.Pipeline()
	for i := range g.ops {
		if rs[i].Allowed && !rs[i].Shadowed {
			s.refund.EvalSha(ctx, pipe, []string{g.ops[i].rkey}, g.ops[i].bucket.Interval)
			rs[i].Remaining = min(rs[i].Remaining+1, rs[i].Capacity)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && isNoScript(err) {
		for i := range g.ops {
			if rs[i].Allowed && !rs[i].Shadowed {
				s.refund.Run(ctx, s.rdb, []string{g.ops[i].rkey}, g.ops[i].bucket.Interval)
			}
		}
	}
}

// maxKeysPerCall bounds the keys one script call decides, so that one call
// never holds the server for long.
const maxKeysPerCall = 64

// call is one script call: keys decided together.
type call struct {
	ops  []*op
	keys []string
	args []any
	cmd  *redis.Cmd
}

// callKey groups ops that may share a call: same time argument, same rules,
// same hash slot (in practice: the same key, hammered concurrently).
type callKey struct {
	now   string
	rules *any
	slot  int
}

// calls splits the ops of groups into script calls.
func (s *Store) calls(groups []*group) []*call {
	var out []*call
	open := map[callKey]*call{}
	for _, g := range groups {
		for i := range g.ops {
			o := &g.ops[i]
			// Only keys of one hash slot share a call, on a single server
			// too: every call is valid on a Cluster as it stands.
			k := callKey{now: g.now, rules: &g.rules[0], slot: keySlot(o.rkey)}
			c := open[k]
			if c == nil || len(c.ops) == maxKeysPerCall {
				c = &call{args: append([]any{g.now}, g.rules...)}
				open[k] = c
				out = append(out, c)
			}
			c.ops = append(c.ops, o)
			c.keys = append(c.keys, o.rkey)
			c.args = append(c.args, o.kargs[:]...)
		}
	}
	return out
}

// exec decides the ops of several requests in one round trip: a pipeline of
// script calls, or a plain EVALSHA when there is one call and no index update.
func (s *Store) exec(ctx context.Context, groups []*group) {
	calls := s.calls(groups)
	idx := s.indexUpdates(groups)
	var err error
	if len(calls) == 1 && idx.empty() {
		c := calls[0]
		c.cmd = s.take.EvalSha(ctx, s.rdb, c.keys, c.args...)
		err = c.cmd.Err()
	} else {
		pipe := s.rdb.Pipeline()
		for _, c := range calls {
			c.cmd = s.take.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		idx.queue(ctx, pipe, s)
		_, err = pipe.Exec(ctx)
	}
	if err != nil {
		// A reply error belongs to its command; anything else (a timeout,
		// a lost connection) failed the round trip and every op in it.
		if _, ok := err.(redis.Error); !ok {
			for _, c := range calls {
				for _, o := range c.ops {
					o.err = err
				}
			}
			return
		}
	}
	for _, c := range calls {
		if isNoScript(c.cmd.Err()) {
			// After a restart or SCRIPT FLUSH: EVAL loads the script again.
			c.cmd = s.take.Run(ctx, s.rdb, c.keys, c.args...)
		}
		replies, ok := c.cmd.Val().([]any)
		for i, o := range c.ops {
			switch {
			case c.cmd.Err() != nil:
				o.err = c.cmd.Err()
			case !ok || len(replies) != len(c.ops):
				o.err = core.Errorf(core.CodeInternal, "redisstore: unexpected script reply %v", c.cmd.Val())
			default:
				o.err = parseResult(replies[i], &o.res, &o.pend)
			}
			if o.err == nil && (o.pend > o.res.Now || o.pend < 0) {
				s.idxMu.Lock()
				s.penalized[o.key] = o.pend
				s.idxMu.Unlock()
			}
		}
	}
}

// indexBatch is what a round trip must add to the recently-active and
// penalized indexes.
type indexBatch struct {
	now         int64
	active, pen []redis.Z
	ended       []any
}

func (b *indexBatch) empty() bool { return len(b.active) == 0 && len(b.pen) == 0 && len(b.ended) == 0 }

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
}

func parseResult(v any, r *ratelimit.Result, pend *int64) error {
	a, ok := v.([]any)
	if !ok || len(a) != 12 {
		return core.Errorf(core.CodeInternal, "redisstore: unexpected script reply %v", v)
	}
	n := [12]int64{}
	for i := range a {
		x, ok := a[i].(int64)
		if !ok {
			return core.Errorf(core.CodeInternal, "redisstore: unexpected script reply %v", v)
		}
		n[i] = x
	}
	*r = ratelimit.Result{
		Allowed: n[0] == 1, Shadowed: n[1] == 1, Banned: n[2] == 1, NewBan: n[3] == 1,
		Capacity: int(n[4]), Remaining: int(n[5]), ResetAfter: n[6], RetryAfter: n[7],
		Strikes: int(n[8]), BannedUntil: n[9], Now: n[10],
	}
	*pend = n[11]
	return nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// Reset implements ratelimit.Store.
func (s *Store) Reset(ctx context.Context, key string) error {
	pipe := s.rdb.Pipeline()
	pipe.Del(ctx, s.bucketKey(key))
	pipe.ZRem(ctx, s.keyPenalized, key)
	// Other daemons drop their cached bans on any change message.
	pipe.Publish(ctx, s.chanOverrides, "reset:"+key)
	_, err := pipe.Exec(ctx)
	s.idxMu.Lock()
	delete(s.penalized, key)
	s.idxMu.Unlock()
	return wrap(err, "reset "+key)
}

// wrap marks a Redis failure as unavailable for callers. The message,
// which API callers see, names the operation only: the cause (addresses,
// dial errors) stays in the error chain for logs.
func wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	return core.Wrap(core.CodeUnavailable, err, "the rate-limit backend (redis) is unavailable: "+what)
}
