package redisbroker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/redispipe"
)

// downMasters are the masters of a Redis Cluster whose fetch or tick calls
// failed. Fetches and ticks leave their queues (and the wake-up list and
// the index, when those are theirs) alone until a probe in the background
// finds the master answering again, or the client finds its slots served
// by another address (a failover). Without it one stalled master held up
// the workers of every queue: each fetch waited a whole command timeout
// for it (a queue's dequeue, the pipelined count of every queue's pending
// list, the blocking wait on the wake-up list), and its error ended the
// fetch before the other queues were tried (fail30 F1: jobs of the
// healthy masters' queues waited as long as the stall, 4 to 12 s).
//
// A dead master's calls fail at once and cost little; a stalled one's
// cost a command timeout each, and only the first is paid now. Enqueues
// have lanes of their own per master (enqLane) and need none of this.
type downMasters struct {
	n       atomic.Int32 // len(m), read without mu on every fetch
	mu      sync.Mutex
	m       map[string]*downMaster // by address
	sweptAt time.Time              // when forgetMoved last looked
}

// downMaster is a master marked failing.
type downMaster struct {
	key     string        // a key of its slots: the probe asks its master
	wait    time.Duration // from a failed probe to the next
	probeAt time.Time
	probing bool
}

// Probes of a failing master: the first soon after the failure, then
// doubling up to maxProbeWait while it does not answer.
const (
	firstProbeWait = 250 * time.Millisecond
	maxProbeWait   = 2 * time.Second
)

// failed follows a call on key that failed with err, on a cluster whose
// client can tell the master that holds key: it marks that master failing
// when err says the master is (masterFailing), and reports true: the
// caller goes on with the other queues. On a single server (or a master it
// cannot tell), or when the caller gave up (ctx ended: that says nothing
// of the master), it reports false.
func (b *Broker) failed(ctx context.Context, key string, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	addr := b.masterOfKey(ctx, key)
	if addr == "" {
		return false
	}
	if !masterFailing(err) {
		return true
	}
	d := &b.down
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.m[addr]; !ok {
		if d.m == nil {
			d.m = map[string]*downMaster{}
		}
		d.m[addr] = &downMaster{key: key, wait: firstProbeWait, probeAt: time.Now().Add(firstProbeWait)}
		d.n.Store(int32(len(d.m)))
	}
	return true
}

// masterFailing reports whether err, a call's failure, says its master is
// failing: no answer in time (a timeout, a script that ran after its
// deadline), no connection, or a refusal of the whole node (a Cluster that
// is down, a node loading its data or busy with a script). An answer
// about the call itself (a script's error on one queue's keys, a slot
// moving) says nothing of the master's other queues, which are not left
// out for it.
func masterFailing(err error) bool {
	var rerr redis.Error
	if errors.Is(err, errLate) || !errors.As(err, &rerr) {
		return true
	}
	return redis.IsClusterDownError(err) || redis.IsLoadingError(err) || redis.IsMasterDownError(err) ||
		strings.HasPrefix(rerr.Error(), "BUSY") || redis.IsAuthError(err) || redis.IsMaxClientsError(err)
}

// isDown reports whether the master holding key is marked failing, and
// starts its probe when one is due.
func (b *Broker) isDown(ctx context.Context, key string) bool {
	if b.down.n.Load() == 0 {
		return false
	}
	addr := b.masterOfKey(ctx, key)
	if addr == "" {
		return false
	}
	d := &b.down
	d.mu.Lock()
	defer d.mu.Unlock()
	b.forgetMoved(ctx)
	m := d.m[addr]
	if m == nil {
		return false
	}
	if !m.probing && !time.Now().Before(m.probeAt) {
		m.probing = true
		go b.probe(addr, m)
	}
	return true
}

// forgetMoved drops, at most once a second, the marks of masters that hold
// their key no more: a failover gave their slots to another address, and
// no fetch would ask for theirs again to probe it, so the mark stayed, and
// every fetch checked each queue's master for good (review code30 C7).
// b.down.mu held.
func (b *Broker) forgetMoved(ctx context.Context) {
	d := &b.down
	now := time.Now()
	if now.Sub(d.sweptAt) < time.Second {
		return
	}
	d.sweptAt = now
	for addr, m := range d.m {
		if !m.probing && b.masterOfKey(ctx, m.key) != addr {
			delete(d.m, addr)
		}
	}
	d.n.Store(int32(len(d.m)))
}

// liveQueues splits names into those whose master is not marked failing
// (live) and the others (away), each in their order: live is names itself
// and away nil when none is left out.
func (b *Broker) liveQueues(ctx context.Context, names []string) (live, away []string) {
	if b.down.n.Load() == 0 {
		return names, nil
	}
	for i, q := range names {
		if b.isDown(ctx, b.keys(q).pending) {
			if away == nil {
				live = append(make([]string, 0, len(names)), names[:i]...)
			}
			away = append(away, q)
			continue
		}
		if away != nil {
			live = append(live, q)
		}
	}
	if away == nil {
		return names, nil
	}
	return live, away
}

// probe asks the master at addr whether it answers (PING, within one
// command timeout), and clears its mark when it does or when its key has
// moved to another master; otherwise the next probe waits twice as long.
func (b *Broker) probe(addr string, m *downMaster) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cmdTimeout)
	defer cancel()
	ok := b.masterOfKey(ctx, m.key) != addr
	if !ok {
		if cc, isCluster := b.rdb.(*redis.ClusterClient); isCluster {
			if node, err := cc.MasterForKey(ctx, m.key); err == nil {
				ok = node.Ping(ctx).Err() == nil
			}
		}
	}
	d := &b.down
	d.mu.Lock()
	defer d.mu.Unlock()
	m.probing = false
	if ok {
		if d.m[addr] == m {
			delete(d.m, addr)
			d.n.Store(int32(len(d.m)))
		}
		return
	}
	m.wait = min(2*m.wait, maxProbeWait)
	m.probeAt = time.Now().Add(m.wait)
}

// masterOfKey is the address of the master that holds key on a cluster,
// as far as the client knows the slots; "" on a single server or when it
// cannot tell.
func (b *Broker) masterOfKey(ctx context.Context, key string) string {
	if b.single {
		return ""
	}
	cc, ok := b.rdb.(*redis.ClusterClient)
	if !ok {
		return ""
	}
	return redispipe.MasterAddr(ctx, cc, key)
}
