package daemon

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// readyProbe fails where the daemon could answer but not work: it pops a
// key that never exists, so it writes nothing, but Redis refuses it as a
// write on a read-only replica (READONLY: a replica's URL given by mistake)
// and to a user denied scripts or the command (NOPERM), while a PING passes
// both. LPOP is not refused when Redis is out of memory: that passes, and
// resumes by itself (README, Redis layout).
var readyProbe = redis.NewScript(`return redis.call('LPOP', KEYS[1])`)

// masterProblem is a master of a Redis Cluster that failed the readiness
// probe: its address and why (masterFailure). /readyz gives the address
// only to a caller with an operator or developer token (withoutServers).
type masterProblem struct {
	Server  string `json:"server,omitempty"`
	Problem string `json:"problem"`
}

// withoutServers is failing with the addresses left out, for /readyz
// without a token: anyone may call it, and the addresses of a cluster's
// failing masters map the internal network while it is degraded (sec31
// LOW 4). The problems say nothing of where (masterFailure).
func withoutServers(failing []masterProblem) []masterProblem {
	out := make([]masterProblem, len(failing))
	for i, m := range failing {
		out[i] = masterProblem{Problem: m.Problem}
	}
	return out
}

// ready reports whether the backend answers and lets the daemon work;
// /readyz and the snapshot use it.
//
// On a Redis Cluster every master is probed, in parallel, within ctx: the
// daemon is ready while at least one of them passes, and failing names the
// others. A master down costs the queues and limiter keys of its slots
// only (the limiter decides those by RATE_LIMIT_ON_BACKEND_ERROR, the
// other masters' queues go on), and it is down for every daemon alike:
// readiness that followed it would take every daemon out of a load
// balancer at once, dropping the work the other masters still do. masters
// is how many were probed. err is set when no master passes (or none is
// known), with the first failure.
func (s *Server) ready(ctx context.Context) (failing []masterProblem, masters int, err error) {
	b := s.backend
	if b.Redis == nil {
		return nil, 0, nil
	}
	if cc, ok := b.Redis.(*redis.ClusterClient); ok {
		return readyCluster(ctx, cc, b.Prefix)
	}
	return nil, 0, probeReady(ctx, b.Redis, b.Prefix+"ready-probe")
}

// probeReady runs the probe on c with key.
func probeReady(ctx context.Context, c redis.Scripter, key string) error {
	err := readyProbe.Run(ctx, c, []string{key}).Err()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}

// clusterMapWait bounds the refresh of the map of slots that ForEachMaster
// starts with: a refresh that does not come in time leaves the map as it
// was, and the probes keep the rest of the caller's time.
const clusterMapWait = 150 * time.Millisecond

// readyCluster probes every master of c that the client's map of slots
// names, each with a key of its own slots (readyKey), all within ctx.
func readyCluster(ctx context.Context, c *redis.ClusterClient, prefix string) ([]masterProblem, int, error) {
	var (
		mu       sync.Mutex
		failing  []masterProblem
		firstErr error
		passed   int
	)
	mapCtx, cancel := context.WithTimeout(ctx, clusterMapWait)
	defer cancel()
	err := c.ForEachMaster(mapCtx, func(_ context.Context, m *redis.Client) error {
		addr := m.Options().Addr
		err := probeReady(ctx, m, readyKey(ctx, c, prefix, addr))
		if err != nil && movedAway(err) {
			err = nil // it answered: its slot has just moved
		}
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			passed++
			return nil
		}
		failing = append(failing, masterProblem{Server: addr, Problem: masterFailure(err)})
		if firstErr == nil {
			firstErr = err
		}
		return nil
	})
	slices.SortFunc(failing, func(a, b masterProblem) int { return strings.Compare(a.Server, b.Server) })
	masters := passed + len(failing)
	switch {
	case err != nil: // no map of slots at all
		return nil, 0, err
	case passed > 0:
		return failing, masters, nil
	case firstErr != nil:
		return failing, masters, firstErr
	}
	return nil, 0, errors.New("no master known")
}

// readyKey is a probe key whose slot master addr serves in c's map (the
// client computes the slot; no round trip), or the plain probe key when
// none of the first tags lands there, which a master's MOVED answers. The
// key found is kept (readyKeys) while its slot stays with addr: every
// probe looked for it again, up to 65,536 tags for a master with no slot.
func readyKey(ctx context.Context, c *redis.ClusterClient, prefix, addr string) string {
	id := prefix + " " + addr
	if k, ok := readyKeys.Load(id); ok {
		key := k.(string)
		if key == prefix+"ready-probe" {
			return key
		}
		if m, err := c.MasterForKey(ctx, key); err == nil && m.Options().Addr == addr {
			return key
		}
	}
	key := prefix + "ready-probe"
	for i := range 1 << 16 {
		tagged := prefix + "ready-probe:{" + strconv.Itoa(i) + "}"
		if m, err := c.MasterForKey(ctx, tagged); err == nil && m.Options().Addr == addr {
			key = tagged
			break
		}
	}
	readyKeys.Store(id, key)
	return key
}

// readyKeys holds readyKey's answers, by prefix and master address.
var readyKeys sync.Map

// movedAway reports whether err is a redirection: the node answered.
func movedAway(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	_, moved := redis.IsMovedError(err)
	_, ask := redis.IsAskError(err)
	return moved || ask
}

// masterFailure says why one master of a cluster failed the probe.
func masterFailure(err error) string {
	var re redis.Error
	switch {
	case redis.IsReadOnlyError(err):
		return "a read-only replica"
	case AuthProblem(err) != "":
		return "refuses this daemon's user (" + AuthProblem(err) + ")"
	case errors.As(err, &re):
		return "refuses the probe: " + re.Error() // CLUSTERDOWN, LOADING, …
	}
	return "not answering"
}

// notReady is /readyz's message for err, a failed probe of the backend.
func notReady(kind string, err error) string {
	if redis.IsReadOnlyError(err) {
		return "backend " + kind + " is a read-only replica: point QUEUE_URL at its master"
	}
	if problem := AuthProblem(err); problem != "" {
		return "backend " + kind + " refuses this daemon's user (" + problem + "): see README, Backends"
	}
	return "backend " + kind + " is not reachable"
}
