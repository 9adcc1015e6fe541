package redistest

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SlotCount is the number of hash slots of a Redis Cluster.
const SlotCount = 16384

// clusterBusOffset is how far above its client port a node listens for the
// cluster bus unless cluster-port says otherwise; a node's port must leave
// room for it below 65536.
const clusterBusOffset = 10000

// clusterWait bounds how long StartCluster and WaitOK wait for every node to
// report cluster_state:ok. A master that has just started waits 2 s before it
// reports ok (CLUSTER_WRITABLE_DELAY), so this only has to be generous.
const clusterWait = 30 * time.Second

// Cluster is a Redis Cluster of masters (no replicas), each a Server owned by
// the test, so a single node can be stopped, paused or restarted. Every node
// runs with appendonly, so a restarted master keeps its data and its slots.
type Cluster struct {
	nodes []*Server
	// last[i] is the last slot of nodes[i]; nodes[i] serves the slots from
	// last[i-1]+1 (0 for the first node) to last[i]. StartCluster never moves
	// slots, so this map stays true for the life of the cluster.
	last []int
}

// StartCluster starts n redis-server masters on free loopback ports, assigns
// them the 16384 slots in contiguous ranges the way redis-cli --cluster create
// does, joins them, and returns once every node reports cluster_state:ok and
// every node sees the same slot map. Extra arguments go to every node after
// the cluster's own, so they can override them (e.g. "--cluster-node-timeout",
// "15000"). The nodes are stopped by pid when the test ends.
//
// Nodes run with cluster-node-timeout 5000 ms rather than the default 15 s:
// a master down for longer than that is marked failed, and with no replica to
// take over, its peers clear the flag only once it is back and twice the
// timeout has passed since it was marked (10 s here, 30 s by default).
func StartCluster(tb testing.TB, n int, extra ...string) *Cluster {
	tb.Helper()
	Require(tb)
	if n < 1 || n > SlotCount {
		tb.Fatalf("redistest: a cluster needs between 1 and %d masters, not %d", SlotCount, n)
	}
	c := &Cluster{last: slotRanges(n)}
	for i := 0; i < n; i++ {
		s, err := startClusterNode(tb, extra)
		if err != nil {
			tb.Fatalf("redistest: start cluster node %d of %d: %v", i+1, n, err)
		}
		c.nodes = append(c.nodes, s)
	}
	if err := c.create(); err != nil {
		tb.Fatalf("redistest: create cluster: %v", err)
	}
	c.WaitOK(tb)
	return c
}

// startClusterNode starts one cluster-enabled server on a port whose bus port
// (port+10000) is below 65536 and free, retrying on other ports when the
// server cannot bind, and stops it when the test ends. Each attempt gets a
// fresh dir: a node that failed to bind has already written a nodes.conf
// naming its port.
func startClusterNode(tb testing.TB, extra []string) (*Server, error) {
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		dir := tb.TempDir()
		args := []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "5000",
			// Announcing the loopback address makes CLUSTER SLOTS name every
			// node 127.0.0.1 from the start, instead of "" until a peer tells
			// a node its own address.
			"--cluster-announce-ip", "127.0.0.1",
			"--appendonly", "yes",
		}
		s := &Server{tb: tb, Dir: dir, args: append(args, extra...)}
		if s.Port, err = freeClusterPort(); err != nil {
			continue
		}
		if err = s.start(); err == nil {
			tb.Cleanup(s.Stop)
			return s, nil
		}
	}
	return nil, err
}

// freeClusterPort returns a free loopback port p with p+10000 free too.
func freeClusterPort() (int, error) {
	p, err := FreePort()
	if err != nil {
		return 0, err
	}
	if p+clusterBusOffset > 65535 {
		return 0, fmt.Errorf("port %d leaves no room for its cluster bus port", p)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+clusterBusOffset)))
	if err != nil {
		return 0, fmt.Errorf("cluster bus port of %d: %w", p, err)
	}
	l.Close()
	return p, nil
}

// slotRanges splits the slots into n contiguous ranges as redis-cli does
// (for 3 masters: 0-5460, 5461-10922, 10923-16383) and returns the last slot
// of each.
func slotRanges(n int) []int {
	last := make([]int, n)
	for i := range last {
		// round((i+1) × 16384 / n) − 1, in integers.
		last[i] = (2*(i+1)*SlotCount+n)/(2*n) - 1
	}
	last[n-1] = SlotCount - 1
	return last
}

// create gives every node its own config epoch and slot range, then has the
// first node meet the others; gossip does the rest.
func (c *Cluster) create() error {
	first := 0
	for i, s := range c.nodes {
		// Distinct epochs, as redis-cli sets them, spare the cluster the
		// collision resolution it would otherwise run on equal epochs.
		if _, err := command(s.Addr(), "CLUSTER", "SET-CONFIG-EPOCH", strconv.Itoa(i+1)); err != nil {
			return fmt.Errorf("%s: set config epoch: %w", s.Addr(), err)
		}
		if err := addSlots(s.Addr(), first, c.last[i]); err != nil {
			return fmt.Errorf("%s: add slots %d-%d: %w", s.Addr(), first, c.last[i], err)
		}
		first = c.last[i] + 1
	}
	for _, s := range c.nodes[1:] {
		if _, err := command(c.nodes[0].Addr(), "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(s.Port)); err != nil {
			return fmt.Errorf("%s: meet %s: %w", c.nodes[0].Addr(), s.Addr(), err)
		}
	}
	return nil
}

// addSlots assigns slots first..last to the node at addr, with ADDSLOTSRANGE
// (Redis 7) or, on older servers, ADDSLOTS.
func addSlots(addr string, first, last int) error {
	_, err := command(addr, "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(first), strconv.Itoa(last))
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "unknown subcommand") {
		return err
	}
	args := []string{"CLUSTER", "ADDSLOTS"}
	for slot := first; slot <= last; slot++ {
		args = append(args, strconv.Itoa(slot))
	}
	_, err = command(addr, args...)
	return err
}

// WaitOK waits until every node reports cluster_state:ok, knows every other
// node and serves the slot map StartCluster assigned, and fails tb after
// 30 s. Call it after restarting a node before relying on the cluster; tb is
// the (sub)test that waits, since only it may stop itself on failure.
func (c *Cluster) WaitOK(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		err := c.check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: cluster not ok within %s: %v", clusterWait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check returns nil when every node is ok and agrees on the slot map, or the
// first disagreement it finds.
func (c *Cluster) check() error {
	want := c.slotMap()
	for _, s := range c.nodes {
		info, err := command(s.Addr(), "CLUSTER", "INFO")
		if err != nil {
			return fmt.Errorf("%s: cluster info: %w", s.Addr(), err)
		}
		fields := infoFields(fmt.Sprint(info))
		if st := fields["cluster_state"]; st != "ok" {
			return fmt.Errorf("%s: cluster_state:%s", s.Addr(), st)
		}
		if known := fields["cluster_known_nodes"]; known != strconv.Itoa(len(c.nodes)) {
			return fmt.Errorf("%s: knows %s nodes, want %d", s.Addr(), known, len(c.nodes))
		}
		slots, err := command(s.Addr(), "CLUSTER", "SLOTS")
		if err != nil {
			return fmt.Errorf("%s: cluster slots: %w", s.Addr(), err)
		}
		got, err := parseClusterSlots(slots)
		if err != nil {
			return fmt.Errorf("%s: cluster slots: %w", s.Addr(), err)
		}
		if got != want {
			return fmt.Errorf("%s: slot map %s, want %s", s.Addr(), got, want)
		}
	}
	return nil
}

// slotMap renders the assigned slot map the way parseClusterSlots renders a
// CLUSTER SLOTS reply: "first-last=host:port" per range, in slot order.
func (c *Cluster) slotMap() string {
	var parts []string
	first := 0
	for i, s := range c.nodes {
		parts = append(parts, fmt.Sprintf("%d-%d=%s", first, c.last[i], s.Addr()))
		first = c.last[i] + 1
	}
	return strings.Join(parts, " ")
}

// parseClusterSlots renders a CLUSTER SLOTS reply as "first-last=host:port"
// per range (masters only), sorted by first slot.
func parseClusterSlots(reply any) (string, error) {
	entries, ok := reply.([]any)
	if !ok {
		return "", fmt.Errorf("reply is %T, not an array", reply)
	}
	type slotRange struct {
		first int64
		text  string
	}
	ranges := make([]slotRange, 0, len(entries))
	for _, e := range entries {
		fields, ok := e.([]any)
		if !ok || len(fields) < 3 {
			return "", fmt.Errorf("malformed entry %v", e)
		}
		first, ok1 := fields[0].(int64)
		last, ok2 := fields[1].(int64)
		master, ok3 := fields[2].([]any)
		if !ok1 || !ok2 || !ok3 || len(master) < 2 {
			return "", fmt.Errorf("malformed entry %v", e)
		}
		host, _ := master[0].(string)
		port, _ := master[1].(int64)
		addr := net.JoinHostPort(host, strconv.FormatInt(port, 10))
		ranges = append(ranges, slotRange{first, fmt.Sprintf("%d-%d=%s", first, last, addr)})
	}
	slices.SortFunc(ranges, func(a, b slotRange) int { return cmp.Compare(a.first, b.first) })
	parts := make([]string, len(ranges))
	for i, r := range ranges {
		parts[i] = r.text
	}
	return strings.Join(parts, " "), nil
}

// infoFields parses "name:value" lines of an INFO-style reply.
func infoFields(s string) map[string]string {
	fields := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if name, value, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[name] = value
		}
	}
	return fields
}

// Stop stops every node. The test's cleanup does this anyway; Stop is for a
// test or benchmark that starts several clusters.
func (c *Cluster) Stop() {
	for _, s := range c.nodes {
		s.Stop()
	}
}

// Nodes returns the masters in slot order: Nodes()[0] serves slot 0.
func (c *Cluster) Nodes() []*Server {
	return append([]*Server(nil), c.nodes...)
}

// Seeds returns host:port of every node, in slot order.
func (c *Cluster) Seeds() []string {
	seeds := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		seeds[i] = s.Addr()
	}
	return seeds
}

// URL returns the first node's redis:// URL with the other nodes as extra
// seeds in go-redis's form, redis://h:p?addr=h:p&addr=h:p, which
// redis.ParseClusterURL reads.
func (c *Cluster) URL() string {
	u := c.nodes[0].URL()
	for i, s := range c.nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + s.Addr()
	}
	return u
}

// MasterFor returns the node that serves key's hash slot.
func (c *Cluster) MasterFor(key string) *Server {
	slot := KeySlot(key)
	for i, last := range c.last {
		if slot <= last {
			return c.nodes[i]
		}
	}
	panic("redistest: slot map does not cover slot " + strconv.Itoa(slot))
}

// KeySlot returns the hash slot of key as Redis Cluster computes it: CRC16
// (XMODEM) of the key's hash tag modulo 16384. The hash tag is the part
// between the first "{" and the next "}" when that part is not empty, else
// the whole key.
func KeySlot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	return int(crc16(key)) % SlotCount
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0, no reflection,
// no final xor), the checksum of the Redis Cluster specification.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for bit := 0; bit < 8; bit++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// command sends one command to addr and returns its whole reply: a string
// for simple and bulk strings, int64 for integers, []any for arrays, nil for
// a null, and an error for an error reply. Do formats the same reply as text.
func command(addr string, args ...string) (any, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return nil, err
	}
	return readReply(bufio.NewReader(conn))
}

// readReply reads one RESP2 reply.
func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, fmt.Errorf("redis: empty reply line")
	}
	kind, rest := line[0], line[1:]
	switch kind {
	case '+':
		return rest, nil
	case '-':
		return nil, fmt.Errorf("redis: %s", rest)
	case ':':
		return strconv.ParseInt(rest, 10, 64)
	case '$':
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			return nil, err
		}
		items := make([]any, n)
		for i := range items {
			if items[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return items, nil
	}
	return nil, fmt.Errorf("redis: unexpected reply %q", line)
}

// Flush empties every master of the cluster.
func (c *Cluster) Flush(tb testing.TB) {
	tb.Helper()
	FlushAll(tb, c.Nodes()...)
}
