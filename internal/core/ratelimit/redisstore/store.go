// Package redisstore is the Redis ratelimit.Store, shared by every daemon and
// CLI on one Redis. Decisions are made by a Lua script (take.lua) run with
// EVALSHA (NOSCRIPT falls back to loading it); a key's name carries the key
// as hash tag so that a Redis Cluster keeps it in one slot. Concurrent
// decisions are coalesced: while a round trip is in flight, the decisions
// that arrive meanwhile wait and go together in the next, as one script call
// that decides all their keys on a single Redis, or one call per hash slot
// on a Cluster. That changes no decision (each key is still decided
// atomically, one after the other) but pays a script call's fixed cost, the
// round trip and the system calls once for many decisions.
//
// A caller never waits longer than Options.Timeout, even on a client whose
// sockets ignore context deadlines, and a queued caller stops waiting when
// its context ends; with ContextTimeoutEnabled set on the client, a lone
// caller also skips the hand-off to a flusher.
//
// Layout (prefix "refrakt:" by default):
//
//	<prefix>rl:{<limit>:<scope>:<identity>}  string: the key's GCRA, strikes and ban; TTL'd
//	<prefix>rl:active                        zset: recently active keys by last use, bounded
//	<prefix>rl:penalized                     zset: keys with strikes or a ban, by when they end
//	<prefix>rl:banned                        zset: banned keys, by when their ban ends
//	<prefix>rl:overrides                     hash: target → override (JSON)
//	<prefix>rl:overrides:changed             pub/sub channel: an override changed
//	<prefix>rl:limits                        string: the limits the daemons enforce (JSON), as
//	                                         the last daemon to write published them; TTL'd
package redisstore

import (
	"context"
	_ "embed"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/redispipe"
)

var (
	_ ratelimit.Store            = (*Store)(nil)
	_ ratelimit.PartitionedStore = (*Store)(nil)
)

var (
	//go:embed take.lua
	takeSource string
	//go:embed refund.lua
	refundSource string
	//go:embed peek.lua
	peekSource string
	//go:embed ban.lua
	banSource string
)

// Options tune a Store. The zero value gives the defaults.
type Options struct {
	// Prefix starts every key (REFRAKT_PREFIX, default "refrakt:").
	Prefix string
	// Clock, when set, supplies "now" to the scripts instead of Redis TIME,
	// for deterministic tests. Production leaves it nil.
	Clock ratelimit.Clock
	// Timeout bounds each Take, from its start to its answer, and each
	// coalesced round trip (default 100ms, like RATE_LIMIT_BACKEND_TIMEOUT);
	// a queued caller's own context may end its wait sooner.
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
	peek   *redis.Script
	ban    *redis.Script

	keyActive, keyPenalized, keyBanned, keyOverrides, chanOverrides, keyLimits string

	b batcher
	// multiSlot says one script call may hold keys of any slots: the client
	// talks to a single server, not a Cluster. A Cluster node refusing a
	// call (CROSSSLOT) turns it off.
	multiSlot atomic.Bool
	// direct says the client honours context deadlines on its sockets, so a
	// lone caller may run its round trip on its own goroutine.
	direct bool
	// cluster is the client when it is a Cluster's: each round trip then
	// goes to one master (decide), and the index updates go apart.
	cluster *redis.ClusterClient
	// iw writes a Cluster's index updates apart from the decisions.
	iw indexWriter

	// indexed throttles the recently-active index to one update per key
	// and second from this process.
	idxMu   sync.Mutex
	indexed map[string]int64
	// penalized are keys whose penalty end must still be recorded; they go
	// with the next round trip.
	penalized map[string]int64
	// banned are keys newly banned, with their ban's end, for the ban index.
	banned map[string]int64

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
		peek:          redis.NewScript(peekSource),
		ban:           redis.NewScript(banSource),
		keyActive:     o.Prefix + "rl:active",
		keyPenalized:  o.Prefix + "rl:penalized",
		keyBanned:     o.Prefix + "rl:banned",
		keyOverrides:  o.Prefix + "rl:overrides",
		chanOverrides: o.Prefix + "rl:overrides:changed",
		keyLimits:     o.Prefix + "rl:limits",
		indexed:       map[string]int64{},
		penalized:     map[string]int64{},
		banned:        map[string]int64{},
	}
	switch c := rdb.(type) {
	case *redis.Client:
		s.direct = c.Options().ContextTimeoutEnabled
		s.multiSlot.Store(true)
	case *redis.ClusterClient:
		s.direct = c.Options().ContextTimeoutEnabled
		s.cluster = c
	}
	s.b.start(s, o.Flushers)
	return s
}

// Load loads the scripts into Redis (every master of a Cluster) and so
// opens a first connection: the first decisions, a burst at start-up among
// them, then need neither the NOSCRIPT fallback's extra round trip nor a
// dial within their RATE_LIMIT_BACKEND_TIMEOUT. Scripts are reloaded after
// NOSCRIPT anyway, so calling Load is an optimisation, not a requirement.
func (s *Store) Load(ctx context.Context) error {
	for _, sc := range []*redis.Script{s.take, s.refund, s.peek, s.ban} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return wrap(err, "load scripts")
		}
	}
	return nil
}

// Close stops the flushers. It does not close the Redis client.
func (s *Store) Close() error {
	s.b.stop()
	return nil
}

// bucketKey is the Redis key of a bucket key; the braces are its hash tag.
func (s *Store) bucketKey(key string) string { return redisKey(s.opts.Prefix, key) }

// redisKey is bucketKey for a key as a string or as bytes: from bytes, the
// conversion and the concatenation make one allocation.
func redisKey[K ~string | ~[]byte](prefix string, key K) string {
	return prefix + "rl:{" + string(key) + "}"
}

// op is one key's decision within a request.
type op struct {
	rkey     string // the Redis key, "refrakt:rl:{run:ip:203.0.113.7}"
	key      string // the bucket key, "run:ip:203.0.113.7", within rkey
	interval int64
	// spec is the bucket as take.lua reads it. A copy, made by the caller:
	// the bucket is its scratch memory, and a flusher may still read an op
	// whose caller has given up.
	spec [specSize]byte
	res  ratelimit.Result
	pend int64 // penalty end, Unix µs
	err  error
	// atomic says the script decided o's request all or nothing (its keys
	// in one call): a denied request spent nothing, and needs no give-back.
	atomic bool
}

// group is one request's ops; they travel in the same round trip.
type group struct {
	ops   []op
	now   int64 // Unix µs; 0 for Redis TIME
	rules *rulesCache
	done  chan struct{}
	// abandoned says the caller stopped waiting (its context ended or the
	// store's timeout passed): a flusher that has not sent it yet drops it,
	// so a request answered otherwise (by the fallback) never spends tokens
	// later.
	abandoned atomic.Bool
	// timer bounds a queued caller's wait; it stays with the group.
	timer *time.Timer
	// parent is the request this group holds some ops of, on a Cluster
	// whose masters hold its keys apart (byMaster); pending counts such
	// parts of a request still unanswered.
	parent  *group
	pending atomic.Int32
	// index is such a part's op in its parent; answered has bit i set once
	// the parent's op i is answered (or failed on its own), so that a
	// caller who stops waiting can tell the store's error which keys got
	// no answer.
	index    int
	answered atomic.Uint32
	// arr holds ops for the usual request of few scopes.
	arr [2]op
}

// Take implements ratelimit.Store. The keys of a request go in one round
// trip. On a single Redis they go in one script call, which decides them
// all or nothing, as the memory store does. On a Cluster, keys of
// different slots are decided in calls of their own; when one denies, the
// tokens the others took are given back (a second round trip, only then),
// and between the two a concurrent request may see those tokens spent.
// When some of a request's masters fail and others answer, the answered
// keys are decided so too, as a request of their own, and the
// ratelimit.PartialError names them (Decided).
func (s *Store) Take(ctx context.Context, r *ratelimit.Rules, bs []ratelimit.Bucket, rs []ratelimit.Result) error {
	deadline := time.Now().Add(s.opts.Timeout)
	g := s.newGroup(r, bs)
	if err := s.b.do(ctx, g, deadline); err != nil {
		// Not reused: a flusher may still hold g.
		return s.decidedOf(ctx, g, err, rs)
	}
	defer putGroup(g)
	if err := opsErr(g.ops); err != nil {
		return s.decidedOf(ctx, g, err, rs)
	}
	denied, took, atomic := false, false, true
	for i := range g.ops {
		o := &g.ops[i]
		rs[i] = o.res
		atomic = atomic && o.atomic
		if !o.res.Allowed {
			denied = true
		} else if !o.res.Shadowed {
			took = true
		}
	}
	if denied && took {
		if refunds := unspend(g, rs, !atomic); len(refunds) > 0 {
			s.giveBack(ctx, refunds, deadline)
		}
	}
	return nil
}

// opsErr is the error of a request whose ops failed: the first op's,
// naming the ops that failed and those decided when others were decided (a
// Cluster's master failing while the others answer), or nil. An op a
// moving slot refused (redispipe.SlotMoving: nothing ran) fails the
// request, but blames no master: both answered. Blamed, it sent every key
// of its master to RATE_LIMIT_ON_BACKEND_ERROR for the backoff.
func opsErr(ops []op) error {
	var first error
	var failed []int
	for i := range ops {
		if ops[i].err != nil {
			if first == nil {
				first = ops[i].err
			}
			if redispipe.SlotMoving(ops[i].err) {
				continue // not blamed: not in failed
			}
			failed = append(failed, i)
		}
	}
	if first == nil || len(failed) == len(ops) {
		return first
	}
	var decided []int
	for i := range ops {
		if ops[i].err == nil {
			decided = append(decided, i)
		}
	}
	return &ratelimit.PartialError{Failed: failed, Decided: decided, Err: first}
}

// decidedOf returns err, the error of g's request, having written into rs
// the results of the ops Redis decided when it is a PartialError naming
// some (Decided): those ops are a request of their own, all or nothing, so
// when one of them denied, the tokens the others took are given back. Each
// went in a call of its own (a master's keys are never in one call with
// another's), so none was decided whole with another. The refund has a
// round trip's time of its own: the request's went by waiting for the
// master that failed.
func (s *Store) decidedOf(ctx context.Context, g *group, err error, rs []ratelimit.Result) error {
	pe, ok := err.(*ratelimit.PartialError)
	if !ok || len(pe.Decided) == 0 {
		return err
	}
	denied, took := false, false
	for _, i := range pe.Decided {
		rs[i] = g.ops[i].res
		if !rs[i].Allowed {
			denied = true
		} else if !rs[i].Shadowed {
			took = true
		}
	}
	if denied && took {
		var refunds []refund
		for _, i := range pe.Decided {
			refunds = unspendOne(refunds, &rs[i], g.ops[i].rkey, g.ops[i].interval)
		}
		s.giveBack(ctx, refunds, time.Now().Add(s.opts.Timeout))
	}
	return err
}

// GiveBack implements ratelimit.PartitionedStore, in one round trip (on
// a client whose sockets ignore context deadlines, sent without waiting).
func (s *Store) GiveBack(ctx context.Context, bs []ratelimit.Bucket, rs []ratelimit.Result) {
	var refunds []refund
	for i := range bs {
		refunds = unspendOne(refunds, &rs[i], redisKey(s.opts.Prefix, bs[i].Key), bs[i].Interval)
	}
	if len(refunds) > 0 {
		s.giveBack(ctx, refunds, time.Now().Add(s.opts.Timeout))
	}
}

// Partitioned implements ratelimit.PartitionedStore: a Cluster's masters
// fail apart.
func (s *Store) Partitioned() bool { return s.cluster != nil }

// Partition implements ratelimit.PartitionedStore: the address of the
// master that holds the bucket key, as the client last learned the slots.
func (s *Store) Partition(key []byte) string {
	if s.cluster == nil {
		return ""
	}
	// Bounded: the client asks the Cluster for its slots when it has
	// not yet.
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	return s.master(ctx, redisKey(s.opts.Prefix, key))
}

// master is the address of the master that holds the Redis key rkey on a
// Cluster, "" when the client cannot tell.
func (s *Store) master(ctx context.Context, rkey string) string {
	return redispipe.MasterAddr(ctx, s.cluster, rkey)
}

// unspend counts the token back in the results of the buckets that allowed
// a denied request and, with refunds, returns them for giveBack. The script
// spent nothing of them when it decided the request whole; otherwise they
// must be given back.
func unspend(g *group, rs []ratelimit.Result, refunds bool) []refund {
	var out []refund
	for i := range g.ops {
		if refunds {
			out = unspendOne(out, &rs[i], g.ops[i].rkey, g.ops[i].interval)
		} else {
			countBack(&rs[i])
		}
	}
	return out
}

// unspendOne counts the token of r back when r admitted (and is not a
// shadow's), and adds its refund (the key rkey, at interval) to out.
func unspendOne(out []refund, r *ratelimit.Result, rkey string, interval int64) []refund {
	if countBack(r) {
		out = append(out, refund{rkey, interval})
	}
	return out
}

// countBack counts the token of r back when r admitted (and is not a
// shadow's), and says whether it did.
func countBack(r *ratelimit.Result) bool {
	if !r.Allowed || r.Shadowed {
		return false
	}
	r.Remaining = min(r.Remaining+1, r.Capacity)
	return true
}

// newGroup returns a pooled group holding one op per bucket of bs, under
// rules r.
func (s *Store) newGroup(r *ratelimit.Rules, bs []ratelimit.Bucket) *group {
	g := groupPool.Get().(*group)
	g.rules = s.rulesArgs(r)
	if s.opts.Clock != nil {
		g.now = s.opts.Clock.Now().UnixMicro()
	}
	if len(bs) <= len(g.arr) {
		g.ops = g.arr[:len(bs)]
	} else {
		g.ops = make([]op, len(bs))
	}
	head := len(s.opts.Prefix) + len("rl:{")
	for i := range bs {
		b := &bs[i]
		// One allocation for both names: the bucket key is the Redis key's
		// hash tag.
		rkey := redisKey(s.opts.Prefix, b.Key)
		o := &g.ops[i]
		*o = op{rkey: rkey, key: rkey[head : len(rkey)-1], interval: b.Interval}
		o.spec = packSpec(b)
	}
	return g
}

// TakeTimeout implements ratelimit.BoundedStore: no Take waits longer than
// Options.Timeout.
func (s *Store) TakeTimeout() time.Duration { return s.opts.Timeout }

// groupPool recycles the groups of answered requests; a group whose caller
// gave up stays with the flusher that may still hold it.
var groupPool = sync.Pool{New: func() any { return new(group) }}

func putGroup(g *group) {
	if len(g.ops) > len(g.arr) {
		return
	}
	t := g.timer
	*g = group{}
	g.timer = t
	groupPool.Put(g)
}

// rulesArgs returns r as the script reads it, packed once per rules.
func (s *Store) rulesArgs(r *ratelimit.Rules) *rulesCache {
	if c := s.rules.Load(); c != nil && c.r == *r {
		return c
	}
	c := &rulesCache{r: *r, packed: packRules(r)}
	s.rules.Store(c)
	return c
}

type rulesCache struct {
	r      ratelimit.Rules
	packed [rulesSize]byte
}

// refund is a token to give back: a key's name and its interval.
type refund struct {
	rkey     string
	interval int64
}

// giveBack returns the tokens of the buckets that allowed a denied request,
// by deadline. Not by the caller's context: a client that hung up, ending
// it, would keep the refused request's token spent (code30 C9); values
// still pass. On a client whose sockets ignore context deadlines, waiting
// for the round trip could outlast the deadline, so the refund goes on
// without the caller (it needs no answer), bounded by the client's own
// timeouts.
func (s *Store) giveBack(ctx context.Context, refunds []refund, deadline time.Time) {
	if !s.direct {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
			defer cancel()
			s.sendRefunds(ctx, refunds)
		}()
		return
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	s.sendRefunds(ctx, refunds)
}

func (s *Store) sendRefunds(ctx context.Context, refunds []refund) {
	pipe := s.rdb.Pipeline()
	for _, r := range refunds {
		s.refund.EvalSha(ctx, pipe, []string{r.rkey}, r.interval)
	}
	if _, err := redispipe.Exec(ctx, pipe); err != nil && redispipe.IsNoScript(err) {
		for _, r := range refunds {
			s.refund.Run(ctx, s.rdb, []string{r.rkey}, r.interval)
		}
	}
}

// exec decides the ops of several requests in one round trip: one script
// call, or a pipeline of calls (one per slot on a Cluster) and index
// updates.
func (s *Store) exec(ctx context.Context, groups []*group) {
	calls := s.calls(groups)
	defer putCalls(calls)
	idx := s.indexUpdates(groups)
	pen := idx.pen
	if s.cluster != nil {
		s.iw.add(s, idx)
		idx = indexBatch{}
	}
	// A Cluster's client runs a command alone through its routing, which
	// fetches the servers' command table first if it has not got it yet,
	// from any node, for up to 5 s and under a lock, whatever the context
	// says; a pipeline routes by slot alone.
	if len(calls) == 1 && idx.empty() && s.cluster == nil {
		c := calls[0]
		c.cmd = s.take.EvalSha(ctx, s.rdb, c.keys, c.args...)
	} else {
		pipe := s.rdb.Pipeline()
		for _, c := range calls {
			c.cmd = s.take.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		idx.queue(ctx, pipe, s)
		_, _ = redispipe.Exec(ctx, pipe) // each call's error is its command's
	}
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil && !isReplyErr(err) {
			// No answer from the call's server (a timeout, a lost
			// connection): its ops failed. A call answered before that, on
			// the same connection or by another master, keeps its answer.
			for _, o := range c.ops {
				o.err = err
			}
			continue
		}
		if redispipe.IsNoScript(c.cmd.Err()) {
			// After a restart or SCRIPT FLUSH: EVAL loads the script again.
			c.cmd = s.take.Run(ctx, s.rdb, c.keys, c.args...)
		}
		if isCrossSlot(c.cmd.Err()) {
			// A single-server client on a Cluster node (REDIS_CLUSTER=false
			// on a one-node cluster): from now on, one call per slot. The
			// refused call ran nothing; its ops go again, split by slot,
			// whichever flusher turned multiSlot off.
			s.multiSlot.Store(false)
			s.redo(ctx, c)
			continue
		}
		c.parse(s)
	}
	if len(pen) > 0 {
		s.unpenalize(pen, calls)
	}
}

// unpenalize takes out again, with the next round trip, the penalty ends
// this one recorded (pen) for keys it found unpenalized: a reset by another
// process just before it, whose message had not come yet, left the end of
// the penalty it lifted to be recorded after it (listing the key as
// penalized until that end).
func (s *Store) unpenalize(pen []redis.Z, calls []*call) {
	written := make(map[string]bool, len(pen))
	for _, z := range pen {
		written[z.Member.(string)] = true
	}
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	for _, c := range calls {
		for _, o := range c.ops {
			if o.err != nil || o.pend != 0 || o.res.Banned || o.res.Strikes != 0 || !written[o.key] {
				continue
			}
			if _, pending := s.penalized[o.key]; !pending {
				s.penalized[o.key] = -1
			}
		}
	}
}

// isReplyErr reports whether err is Redis's answer to a command (it ran, or
// was refused), not a failure to get one.
func isReplyErr(err error) bool {
	_, ok := err.(redis.Error)
	return ok
}

// decide decides batch and signals each request as soon as its answer is
// in. On a single server that is one round trip. On a Cluster the ops go
// to their masters in round trips of their own, in parallel, and decide
// does not wait for them: a master that does not answer holds up only the
// requests that need it (the limiter sends those to its error policy),
// neither the others' answers nor the flusher. A request whose keys live on
// several masters is answered once each master has answered for its keys,
// each key's answer its own (go-redis fails every command of a Cluster
// pipeline it retries, the answered ones too).
func (s *Store) decide(batch []*group) {
	if s.cluster == nil {
		s.execSignal(batch)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	for _, p := range s.byMaster(ctx, batch) {
		go s.execSignal(p)
	}
}

// execSignal is exec within the store's timeout, then signals the groups.
func (s *Store) execSignal(groups []*group) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	s.exec(ctx, groups)
	cancel()
	for _, g := range groups {
		g.signal()
	}
}

// signal tells g's caller that g is answered: for a part of a request,
// once all its parts are.
func (g *group) signal() {
	if p := g.parent; p != nil {
		p.answered.Or(1 << g.index)
		if p.pending.Add(-1) == 0 && p.done != nil {
			close(p.done)
		}
		return
	}
	close(g.done)
}

// execApart decides the groups of a lone caller (no signal) on a Cluster:
// one round trip per master, in parallel, each key's answer its own.
func (s *Store) execApart(ctx context.Context, groups []*group) {
	parts := s.byMaster(ctx, groups)
	if len(parts) == 1 {
		s.exec(ctx, parts[0])
		return
	}
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.exec(ctx, p)
		}()
	}
	wg.Wait()
}

// byMaster splits batch by the master of its keys on a Cluster: a request
// whose keys all live on one master goes whole to that master's part; one
// whose keys live on several is split into a group per key (parent set),
// each in its master's part.
func (s *Store) byMaster(ctx context.Context, batch []*group) [][]*group {
	var names []string
	var parts [][]*group
	add := func(name string, g *group) {
		j := slices.Index(names, name)
		if j < 0 {
			j = len(names)
			names = append(names, name)
			parts = append(parts, nil)
		}
		parts[j] = append(parts[j], g)
	}
	var masters [2 * maxSplit]string
	for _, g := range batch {
		ms := masters[:0]
		if len(g.ops) > len(masters) {
			ms = make([]string, 0, len(g.ops))
		}
		same := true
		for i := range g.ops {
			ms = append(ms, s.master(ctx, g.ops[i].rkey))
			same = same && ms[i] == ms[0]
		}
		if same {
			add(ms[0], g)
			continue
		}
		g.pending.Store(int32(len(g.ops)))
		for i := range g.ops {
			add(ms[i], &group{ops: g.ops[i : i+1], now: g.now, rules: g.rules, parent: g, index: i})
		}
	}
	return parts
}

// maxSplit is half the keys of a request whose masters byMaster reads
// without allocating (a request has one key per scope).
const maxSplit = 4

// redo decides the ops of a call refused for spanning slots again, one call
// per slot. Rare (once per store at most), so plain and sequential.
func (s *Store) redo(ctx context.Context, c *call) {
	var cb callBuilder
	for _, o := range c.ops {
		o.atomic = false
		cb.add(o, c.now, c.rules, keySlot(o.rkey))
	}
	defer putCalls(cb.out)
	for _, c := range cb.out {
		c.finish()
		c.cmd = s.take.Run(ctx, s.rdb, c.keys, c.args...)
		c.parse(s)
	}
}

func isCrossSlot(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "CROSSSLOT")
}

// Reset implements ratelimit.Store.
func (s *Store) Reset(ctx context.Context, key string) error {
	pipe := s.rdb.Pipeline()
	pipe.Del(ctx, s.bucketKey(key))
	pipe.ZRem(ctx, s.keyPenalized, key)
	pipe.ZRem(ctx, s.keyBanned, key)
	// Other daemons drop their cached bans on any change message.
	pipe.Publish(ctx, s.chanOverrides, resetMessage+key)
	_, err := redispipe.Exec(ctx, pipe)
	s.forgetPenalty(key)
	return wrap(err, "reset "+key)
}

// Ban implements ratelimit.Store with ban.lua, one call in the key's slot;
// then the key is added to the penalized and banned indexes (keys of their
// own, so apart from the script, as decisions add theirs), for snapshots
// and `refrakt top`. Other daemons see the ban at the key's next decision,
// which the store refuses, and cache it from there.
func (s *Store) Ban(ctx context.Context, key string, d time.Duration) (int64, error) {
	var now int64
	if s.opts.Clock != nil {
		now = s.opts.Clock.Now().UnixMicro()
	}
	// The decay of the rules last decided with, for the key's penalty end
	// in the index; none before the first decision (the ban's end then).
	decay := int64(0)
	if rc := s.rules.Load(); rc != nil {
		decay = rc.r.DecayMicros
	}
	reply, err := s.ban.Run(ctx, s.rdb, []string{s.bucketKey(key)},
		strconv.FormatInt(d.Microseconds(), 10), strconv.FormatInt(now, 10), strconv.FormatInt(decay, 10)).StringSlice()
	if err != nil {
		return 0, wrap(err, "ban "+key)
	}
	if len(reply) != 2 {
		return 0, wrap(fmt.Errorf("ban.lua answered %d values, want 2", len(reply)), "ban "+key)
	}
	until, err1 := strconv.ParseInt(reply[0], 10, 64)
	pend, err2 := strconv.ParseInt(reply[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, wrap(fmt.Errorf("ban.lua answered %q", reply), "ban "+key)
	}
	pipe := s.rdb.Pipeline()
	// GT: an index's end only grows here (this store may know no decay,
	// as the CLI's, and a ban never shortens a penalty).
	pipe.ZAddGT(ctx, s.keyPenalized, redis.Z{Score: float64(pend), Member: key})
	pipe.ZAddGT(ctx, s.keyBanned, redis.Z{Score: float64(until), Member: key})
	// Other daemons drop their cached bans on any change message: one of
	// an automatic ban, shorter, would go on answering its end.
	pipe.Publish(ctx, s.chanOverrides, banMessage+key)
	// Best effort, as a decision's index updates: the ban holds (the
	// script wrote it), only snapshots would miss it, and a daemon that
	// misses the message answers the ban it cached (its own, as long).
	_, _ = redispipe.Exec(ctx, pipe)
	return until, nil
}

// resetMessage starts the change message of a reset, followed by the key;
// banMessage that of an operator's ban.
const (
	resetMessage = "reset:"
	banMessage   = "ban:"
)

// dropPendingOfGoneKeys drops the penalty ends and new bans this store
// has still to record of keys that no longer exist in Redis: a reset
// deletes its key, and a store that could not hear of it (not subscribed
// yet, or during a gap) would record the old penalty after the reset,
// listing the key as penalized again until that end. One EXISTS per such
// key, in one pipeline; when it fails, nothing is dropped.
func (s *Store) dropPendingOfGoneKeys(ctx context.Context) {
	s.idxMu.Lock()
	keys := make([]string, 0, len(s.penalized)+len(s.banned))
	for k := range s.penalized {
		keys = append(keys, k)
	}
	for k := range s.banned {
		if _, ok := s.penalized[k]; !ok {
			keys = append(keys, k)
		}
	}
	s.idxMu.Unlock()
	if len(keys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	exists := make([]*redis.IntCmd, len(keys))
	for i, k := range keys {
		exists[i] = pipe.Exists(ctx, s.bucketKey(k))
	}
	if _, err := redispipe.Exec(ctx, pipe); err != nil {
		return
	}
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	for i, k := range keys {
		if exists[i].Val() == 0 {
			delete(s.penalized, k)
			delete(s.banned, k)
		}
	}
}

// forgetPenalty drops the penalty end of key this store has still to
// record in the penalized index.
func (s *Store) forgetPenalty(key string) {
	s.idxMu.Lock()
	delete(s.penalized, key)
	delete(s.banned, key)
	s.idxMu.Unlock()
	s.iw.forget(key)
}

// txErr is the error of a MULTI/EXEC: when Redis discarded the
// transaction (EXECABORT, e.g. a command the user may not run), with the
// refusal of the command that caused it, which EXECABORT alone does not say.
func txErr(cmds []redis.Cmder, err error) error {
	if err == nil || !strings.HasPrefix(err.Error(), "EXECABORT") {
		return err
	}
	for _, c := range cmds {
		if cerr := c.Err(); cerr != nil && !strings.HasPrefix(cerr.Error(), "EXECABORT") {
			return fmt.Errorf("%w (so Redis discarded the transaction)", cerr)
		}
	}
	return err
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
