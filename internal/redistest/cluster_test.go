package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
)

func TestCRC16(t *testing.T) {
	// The check value of CRC-16/XMODEM, given by the Redis Cluster spec.
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16(%q) = %#04x, want 0x31c3", "123456789", got)
	}
}

func TestKeySlot(t *testing.T) {
	// Expected slots are CLUSTER KEYSLOT answers of Redis 7.0;
	// TestCluster checks KeySlot against a live node as well.
	tests := []struct {
		name string
		key  string
		want int
	}{
		{name: "plain key", key: "foo", want: 12182},
		{name: "another plain key", key: "bar", want: 5061},
		{name: "spec check string", key: "123456789", want: 12739},
		{name: "empty key", key: "", want: 0},
		{name: "hash tag", key: "{user1000}.following", want: 3443},
		{name: "same hash tag", key: "{user1000}.followers", want: 3443},
		{name: "tag is what is hashed", key: "user1000", want: 3443},
		{name: "empty tag hashes the whole key", key: "{}foo", want: 9500},
		{name: "empty tag at the end", key: "foo{}", want: 5542},
		{name: "first tag wins", key: "foo{bar}{zap}", want: 5061},
		{name: "tag stops at the first closing brace", key: "foo{{bar}}zap", want: 4015},
		{name: "first brace pair empty", key: "foo{}{bar}", want: 8363},
		{name: "unclosed brace", key: "foo{bar", want: 15278},
		{name: "refrakt queue key", key: "refrakt:{queue:default}:pending", want: 6705},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KeySlot(tt.key); got != tt.want {
				t.Errorf("KeySlot(%q) = %d, want %d", tt.key, got, tt.want)
			}
		})
	}
}

func TestSlotRanges(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want []int
	}{
		{name: "one master", n: 1, want: []int{16383}},
		{name: "three masters as redis-cli splits them", n: 3, want: []int{5460, 10922, 16383}},
		{name: "four masters", n: 4, want: []int{4095, 8191, 12287, 16383}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, slotRanges(tt.n)); diff != "" {
				t.Errorf("slotRanges(%d) (-want +got):\n%s", tt.n, diff)
			}
		})
	}
}

func TestCluster(t *testing.T) {
	t.Parallel() // most of a start is Redis's 2 s rejoin delay; overlap it
	c := StartCluster(t, 3)
	ctx := context.Background()

	opts, err := redis.ParseClusterURL(c.URL())
	if err != nil {
		t.Fatalf("ParseClusterURL(%q): %v", c.URL(), err)
	}
	if diff := cmp.Diff(c.Seeds(), opts.Addrs); diff != "" {
		t.Fatalf("seeds read back from URL %q (-want +got):\n%s", c.URL(), diff)
	}
	client := redis.NewClusterClient(opts)
	t.Cleanup(func() { client.Close() })

	keys := []string{"foo", "bar", "{user1000}.following", "{user1000}.followers", "refrakt:{queue:default}:pending"}
	for i := range 60 {
		keys = append(keys, "key:"+strconv.Itoa(i))
	}

	t.Run("every node is ok", func(t *testing.T) {
		for _, s := range c.Nodes() {
			info, err := command(s.Addr(), "CLUSTER", "INFO")
			if err != nil {
				t.Fatalf("%s: cluster info: %v", s.Addr(), err)
			}
			fields := infoFields(fmt.Sprint(info))
			got := map[string]string{
				"cluster_state":          fields["cluster_state"],
				"cluster_slots_assigned": fields["cluster_slots_assigned"],
				"cluster_known_nodes":    fields["cluster_known_nodes"],
				"cluster_size":           fields["cluster_size"],
			}
			want := map[string]string{
				"cluster_state":          "ok",
				"cluster_slots_assigned": "16384",
				"cluster_known_nodes":    "3",
				"cluster_size":           "3",
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s: cluster info (-want +got):\n%s", s.Addr(), diff)
			}
		}
	})

	t.Run("keys written through a cluster client read back", func(t *testing.T) {
		for _, k := range keys {
			if err := client.Set(ctx, k, "v:"+k, 0).Err(); err != nil {
				t.Fatalf("SET %s: %v", k, err)
			}
		}
		want := map[string]string{}
		got := map[string]string{}
		for _, k := range keys {
			want[k] = "v:" + k
			v, err := client.Get(ctx, k).Result()
			if err != nil {
				t.Fatalf("GET %s: %v", k, err)
			}
			got[k] = v
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("values read back (-want +got):\n%s", diff)
		}
		owners := map[string]bool{}
		for _, k := range keys {
			owners[c.MasterFor(k).Addr()] = true
		}
		if len(owners) != 3 {
			t.Errorf("%d keys landed on %d masters, want all 3", len(keys), len(owners))
		}
	})

	t.Run("MasterFor agrees with CLUSTER KEYSLOT and CLUSTER SLOTS", func(t *testing.T) {
		seed := c.Seeds()[1] // any node will do; not the first, for variety
		reply, err := command(seed, "CLUSTER", "SLOTS")
		if err != nil {
			t.Fatalf("cluster slots: %v", err)
		}
		owners := liveSlotOwners(t, reply)
		for _, k := range keys {
			slot, err := command(seed, "CLUSTER", "KEYSLOT", k)
			if err != nil {
				t.Fatalf("cluster keyslot %s: %v", k, err)
			}
			if got, want := KeySlot(k), int(slot.(int64)); got != want {
				t.Errorf("KeySlot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
			}
			if got, want := c.MasterFor(k).Addr(), owners[slot.(int64)]; got != want {
				t.Errorf("MasterFor(%q) = %s, CLUSTER SLOTS says slot %d is on %s", k, got, slot, want)
			}
		}
	})

	t.Run("MasterFor answers without a redirect", func(t *testing.T) {
		for _, k := range keys {
			node := redis.NewClient(&redis.Options{Addr: c.MasterFor(k).Addr()})
			v, err := node.Get(ctx, k).Result()
			node.Close()
			if err != nil {
				t.Fatalf("GET %s on MasterFor: %v", k, err)
			}
			if v != "v:"+k {
				t.Errorf("GET %s on MasterFor = %q, want %q", k, v, "v:"+k)
			}
		}
	})

	t.Run("a restarted master keeps its keys", func(t *testing.T) {
		const key, value = "{restart}:kept", "still here"
		if err := client.Set(ctx, key, value, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		master := c.MasterFor(key)
		pid := master.Pid()
		master.Restart()
		if master.Pid() == pid {
			t.Fatalf("restart kept pid %d", pid)
		}
		c.WaitOK(t)
		got, err := client.Get(ctx, key).Result()
		if err != nil {
			t.Fatalf("GET %s after restart: %v", key, err)
		}
		if got != value {
			t.Errorf("GET %s after restart = %q, want %q", key, got, value)
		}
	})
}

// liveSlotOwners maps every slot to host:port of its master in a CLUSTER
// SLOTS reply.
func liveSlotOwners(t *testing.T, reply any) map[int64]string {
	t.Helper()
	owners := map[int64]string{}
	entries, ok := reply.([]any)
	if !ok {
		t.Fatalf("CLUSTER SLOTS reply is %T", reply)
	}
	for _, e := range entries {
		fields := e.([]any)
		master := fields[2].([]any)
		addr := fmt.Sprintf("%s:%d", master[0], master[1])
		for slot := fields[0].(int64); slot <= fields[1].(int64); slot++ {
			owners[slot] = addr
		}
	}
	if len(owners) != SlotCount {
		t.Fatalf("CLUSTER SLOTS covers %d slots, want %d", len(owners), SlotCount)
	}
	return owners
}

func TestStartClusterWithOneMaster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 1)
	if diff := cmp.Diff([]string{c.Nodes()[0].Addr()}, c.Seeds()); diff != "" {
		t.Errorf("seeds (-want +got):\n%s", diff)
	}
	if got, want := c.URL(), c.Nodes()[0].URL(); got != want {
		t.Errorf("URL() = %q, want %q", got, want)
	}
	if got := c.MasterFor("anything"); got != c.Nodes()[0] {
		t.Errorf("MasterFor on a one-master cluster = %s, want %s", got.Addr(), c.Nodes()[0].Addr())
	}
}

// BenchmarkStartCluster measures starting a 3-master cluster until every
// node is ok and agrees on the slot map.
func BenchmarkStartCluster(b *testing.B) {
	for b.Loop() {
		c := StartCluster(b, 3)
		b.StopTimer()
		c.Stop()
		b.StartTimer()
	}
}

// TestClusterScript drives scripts/redis-cluster.sh the way a developer
// does: start, start again (idempotent), a node killed and brought back by
// start with its data, status, a node stalled (status says so, exit 1:
// it hung on it, fail30 F5), stop.
func TestClusterScript(t *testing.T) {
	t.Parallel()
	Require(t)
	for _, tool := range []string{"bash", "redis-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPING: %s is not installed", tool)
		}
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "redis-cluster.sh"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "cluster")
	run := func(args ...string) (string, error) {
		t.Helper()
		// Bounded generously, for a script that hangs to fail the test
		// rather than stall it (not a timing assertion).
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, script, args...)
		cmd.WaitDelay = 5 * time.Second // a redis-cli child left behind keeps stdout open
		cmd.Env = append(os.Environ(), "REFRAKT_CLUSTER_DIR="+dir, "REPLICAS=0")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("%s %s: %w: %s", filepath.Base(script), strings.Join(args, " "), err, stderr.String())
		}
		return stdout.String(), err
	}
	t.Cleanup(func() {
		if _, err := run("stop"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	out, err := run("start")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("start printed %q, want a URL line and an address line", out)
	}
	url, addrs := lines[0], strings.Fields(lines[1])
	if len(addrs) != 3 || url != "redis://"+addrs[0] {
		t.Fatalf("start printed URL %q and addresses %q, want the URL of the first of 3", url, addrs)
	}

	again, err := run("start")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(out, again); diff != "" {
		t.Errorf("second start (-first +second):\n%s", diff)
	}

	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{opts.Addr}})
	t.Cleanup(func() { client.Close() })
	ctx := context.Background()
	const key = "script:kept"
	if err := client.Set(ctx, key, "yes", 0).Err(); err != nil {
		t.Fatalf("SET through the cluster: %v", err)
	}

	// Kill the node that holds the key; start must bring it back with it.
	// redis-cli splits the slots as slotRanges does, so the key's node is
	// the first whose range ends at or after the key's slot.
	i := slices.IndexFunc(slotRanges(3), func(last int) bool { return KeySlot(key) <= last })
	owner := addrs[i]
	pid := readPid(t, filepath.Join(dir, "node-"+strconv.Itoa(i+1), "redis.pid"))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill node %s (pid %d): %v", owner, pid, err)
	}
	if _, err := run("status"); err == nil {
		t.Errorf("status exited 0 with node %s killed", owner)
	}
	if _, err := run("start"); err != nil {
		t.Fatal(err)
	}
	if err := Ping(owner); err != nil {
		t.Fatalf("node %s after start: %v", owner, err)
	}
	got, err := client.Get(ctx, key).Result()
	if err != nil || got != "yes" {
		t.Errorf("GET %s after the node came back = %q, %v; want \"yes\"", key, got, err)
	}
	if _, err := run("status"); err != nil {
		t.Errorf("status: %v", err)
	}

	// A stalled node accepts connections and never answers: status says
	// so and exits 1, and its seed line names a node that is ok.
	stalled := readPid(t, filepath.Join(dir, "node-1", "redis.pid"))
	if err := syscall.Kill(stalled, syscall.SIGSTOP); err != nil {
		t.Fatalf("stop node %s (pid %d): %v", addrs[0], stalled, err)
	}
	resume := func() { _ = syscall.Kill(stalled, syscall.SIGCONT) }
	t.Cleanup(resume) // before stop, which runs first (cleanups run last in, first out)
	out, err = run("status")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("status with node %s stalled: %v, want exit status 1; it printed:\n%s", addrs[0], err, out)
	}
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(addrs[0]) + ` .* noanswer$`).MatchString(out) {
		t.Errorf("status with node %s stalled does not show it as noanswer:\n%s", addrs[0], out)
	}
	if !strings.Contains(out, "seed: redis://"+addrs[1]+"\n") {
		t.Errorf("status with node %s stalled does not give the next node, %s, as the seed:\n%s", addrs[0], addrs[1], out)
	}
	resume()

	if _, err := run("stop"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("stop left %s behind (stat: %v)", dir, err)
	}
	for _, a := range addrs {
		if Ping(a) == nil {
			t.Errorf("node %s still answers after stop", a)
		}
	}
}

// readPid reads a node's pid file.
func readPid(t *testing.T, pidFile string) int {
	t.Helper()
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("pid file %s: %v", pidFile, err)
	}
	return pid
}
