package scale_test

import (
	"testing"

	"github.com/refrakt/refrakt/internal/redistest"
)

// backend is the Redis the daemons of a test share: one server or a cluster.
type backend struct {
	url     string
	masters []*redistest.Server // every server holding data
	cluster *redistest.Cluster  // nil on a single server
}

// startSingle starts one plain Redis server.
func startSingle(t *testing.T) *backend {
	t.Helper()
	s := redistest.Start(t)
	return &backend{url: s.URL(), masters: []*redistest.Server{s}}
}

// startCluster starts a Redis Cluster of three masters (append-only, so a
// restarted master keeps its data); extra goes to every node.
func startCluster(t *testing.T, extra ...string) *backend {
	t.Helper()
	c := redistest.StartCluster(t, 3, extra...)
	return &backend{url: c.URL(), masters: c.Nodes(), cluster: c}
}

// flush empties every master, so each test starts from nothing.
func (b *backend) flush(t *testing.T) {
	t.Helper()
	redistest.FlushAll(t, b.masters...)
}

// masterOf returns the address of the server holding key.
func (b *backend) masterOf(key string) string {
	if b.cluster == nil {
		return b.masters[0].Addr()
	}
	return b.cluster.MasterFor(key).Addr()
}
