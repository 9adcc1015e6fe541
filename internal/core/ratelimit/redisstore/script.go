package redisstore

import (
	"encoding/binary"
	"math"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// maxKeysPerCall bounds the keys one script call decides, so that one call
// never holds the server for long (a key costs it a few microseconds).
const maxKeysPerCall = 64

// Sizes of take.lua's packed argument (a header: the flag saying now is
// given, now and the rules; then a bucket per key) and of its reply per
// key: the full one, or the short one its flag byte marks (allowed, no
// strikes, no penalty to record).
const (
	rulesSize      = 6 * 8
	specSize       = 3*8 + 1
	replySize      = 1 + 7*8
	shortReplySize = 1 + 3*8
	flagShort      = 16
	// specShadow, specJoined and specNoPenalty are the bits of a bucket's
	// kind byte: a shadow bucket, a key whose request goes on with the next
	// key, and a bucket that denies without striking.
	specShadow    = 1
	specJoined    = 2
	specNoPenalty = 4
)

// call is one script call: keys decided together.
type call struct {
	ops   []*op
	keys  []string
	args  []any  // arg alone
	arg   []byte // the header (now, rules), then the keys' buckets
	now   int64  // 0 for Redis TIME
	rules *rulesCache
	slot  int
	cmd   *redis.Cmd
}

var callPool = sync.Pool{New: func() any { return new(call) }}

func putCalls(cs []*call) {
	for _, c := range cs {
		clear(c.ops)
		clear(c.keys)
		clear(c.args)
		*c = call{ops: c.ops[:0], keys: c.keys[:0], args: c.args[:0], arg: c.arg[:0]}
		callPool.Put(c)
	}
}

// callBuilder splits ops into script calls: ops share a call when they have
// the same time argument and rules and, unless any slots may share a call,
// the same hash slot.
type callBuilder struct {
	out []*call
}

// add puts o into an open call for now, rules and slot (-1: any slot), or a
// new one.
func (cb *callBuilder) add(o *op, now int64, rules *rulesCache, slot int) {
	cb.open(now, rules, slot, 1).append(o, false)
}

// addRequest puts the ops of one request into one call for now and rules
// (any slot), each but the last marked as joined to the next: take.lua
// decides them all or nothing.
func (cb *callBuilder) addRequest(ops []op, now int64, rules *rulesCache) {
	c := cb.open(now, rules, -1, len(ops))
	for i := range ops {
		ops[i].atomic = true
		c.append(&ops[i], i < len(ops)-1)
	}
}

// open returns an open call for now, rules and slot with room for n more
// keys, or a new one.
func (cb *callBuilder) open(now int64, rules *rulesCache, slot, n int) *call {
	// Few calls per round trip: a scan beats a map.
	for i := len(cb.out) - 1; i >= 0; i-- {
		if x := cb.out[i]; x.now == now && x.rules == rules && x.slot == slot && len(x.ops)+n <= maxKeysPerCall {
			return x
		}
	}
	c := callPool.Get().(*call)
	c.now, c.rules, c.slot = now, rules, slot
	c.arg = packHeader(c.arg, now, rules)
	cb.out = append(cb.out, c)
	return c
}

// append adds o to c; joined says the next key belongs to o's request.
func (c *call) append(o *op, joined bool) {
	c.ops = append(c.ops, o)
	c.keys = append(c.keys, o.rkey)
	c.arg = append(c.arg, o.spec[:]...)
	if joined {
		c.arg[len(c.arg)-1] |= specJoined
	}
}

// packHeader appends take.lua's header: "<Bddddddd", the flag saying now is
// given, now, then the rules.
func packHeader(b []byte, now int64, r *rulesCache) []byte {
	given := byte(0)
	if now != 0 {
		given = 1
	}
	b = append(b, given, 0, 0, 0, 0, 0, 0, 0, 0)
	putFloat(b[len(b)-8:], float64(now))
	return append(b, r.packed[:]...)
}

// packRules returns r as take.lua's header holds it.
func packRules(r *ratelimit.Rules) [rulesSize]byte {
	var p [rulesSize]byte
	for i, f := range []float64{r.PenaltyFactor, float64(r.DecayMicros), float64(r.BanAfter),
		float64(r.BanMicros), float64(r.BanMaxMicros), float64(r.RepeatMicros)} {
		putFloat(p[8*i:], f)
	}
	return p
}

// packSpec returns b as take.lua reads it: "<dddB".
func packSpec(b *ratelimit.Bucket) [specSize]byte {
	var p [specSize]byte
	putFloat(p[0:], float64(b.Capacity))
	putFloat(p[8:], float64(b.Interval))
	putFloat(p[16:], float64(b.Window))
	if b.Shadow {
		p[24] = specShadow
	}
	if b.NoPenalty {
		p[24] |= specNoPenalty
	}
	return p
}

// calls splits the ops of groups into script calls, and completes their
// arguments.
func (s *Store) calls(groups []*group) []*call {
	var cb callBuilder
	multi := s.multiSlot.Load()
	for _, g := range groups {
		if multi && len(g.ops) > 1 && distinct(g.ops) {
			cb.addRequest(g.ops, g.now, g.rules)
			continue
		}
		for i := range g.ops {
			o := &g.ops[i]
			slot := -1
			if !multi {
				slot = keySlot(o.rkey)
			}
			cb.add(o, g.now, g.rules, slot)
		}
	}
	for _, c := range cb.out {
		c.finish()
	}
	return cb.out
}

// distinct reports whether the ops' keys differ (a request's scopes always
// do): take.lua holds a request's writes until its last key, so a key twice
// would read its own state unwritten.
func distinct(ops []op) bool {
	for i := 1; i < len(ops); i++ {
		for j := range i {
			if ops[i].rkey == ops[j].rkey {
				return false
			}
		}
	}
	return true
}

// finish sets the script arguments of c.
func (c *call) finish() {
	c.args = append(c.args[:0], c.arg)
}

// parse reads the reply of c into its ops.
func (c *call) parse(s *Store) {
	err := c.cmd.Err()
	reply, ok := c.cmd.Val().(string)
	if err == nil && (!ok || !c.read(s, reply)) {
		err = core.Errorf(core.CodeInternal, "redisstore: unexpected script reply %q", c.cmd.Val())
	}
	if err != nil {
		for _, o := range c.ops {
			o.err = err
		}
	}
}

// read decodes reply into the ops of c; false when it is malformed.
func (c *call) read(s *Store, reply string) bool {
	if len(reply) < 8+shortReplySize*len(c.ops) {
		return false
	}
	now := int64(float64At(reply, 0))
	p := 8
	for _, o := range c.ops {
		if p+shortReplySize > len(reply) {
			return false
		}
		flags := reply[p]
		p++
		o.res = ratelimit.Result{
			Allowed: flags&1 != 0, Shadowed: flags&2 != 0, Banned: flags&4 != 0, NewBan: flags&8 != 0,
			Capacity:   int(float64At(reply, p)),
			Remaining:  int(float64At(reply, p+8)),
			ResetAfter: int64(float64At(reply, p+16)),
			Now:        now,
		}
		o.pend = 0
		o.err = nil
		if flags&flagShort != 0 {
			p += shortReplySize - 1
			continue
		}
		if p+replySize-1 > len(reply) {
			return false
		}
		o.res.RetryAfter = int64(float64At(reply, p+24))
		o.res.Strikes = int(float64At(reply, p+32))
		o.res.BannedUntil = int64(float64At(reply, p+40))
		o.pend = int64(float64At(reply, p+48))
		p += replySize - 1
		if o.pend > now || o.pend < 0 {
			s.idxMu.Lock()
			s.penalized[o.key] = o.pend
			// A new ban is a penalty that ends with it (pend > now).
			if o.res.NewBan {
				s.banned[o.key] = o.res.BannedUntil
			}
			s.idxMu.Unlock()
		}
	}
	return p == len(reply)
}

// putFloat writes f as a little-endian double, as Lua's struct packs it.
func putFloat(b []byte, f float64) {
	binary.LittleEndian.PutUint64(b, math.Float64bits(f))
}

// float64At reads the little-endian double at s[p:], without copying s.
func float64At(s string, p int) float64 {
	_ = s[p+7]
	u := uint64(s[p]) | uint64(s[p+1])<<8 | uint64(s[p+2])<<16 | uint64(s[p+3])<<24 |
		uint64(s[p+4])<<32 | uint64(s[p+5])<<40 | uint64(s[p+6])<<48 | uint64(s[p+7])<<56
	return math.Float64frombits(u)
}
