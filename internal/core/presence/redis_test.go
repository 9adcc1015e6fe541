package presence_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/presence"
	"github.com/refrakt/refrakt/internal/redistest"
)

func record(id string, started time.Time, busy int64) presence.Record {
	return presence.Record{ID: id, Host: "h", PID: 7, Version: "v1", GoVersion: "go1", Addr: "127.0.0.1:1",
		Backend: "redis", Workers: 4, Busy: busy, Succeeded: 3, Failed: 2, Dead: 1,
		Status: presence.StatusRunning, StartedAt: started}
}

// ids lists the ids of recs in order.
func ids(recs []presence.Record) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func newStore(t *testing.T) (*presence.Store, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return presence.NewStore(rdb, "t:"), rdb
}

// TestTwoDaemonsListedThenOneStops: two publishers are both listed with
// their fields (last_seen by Redis's clock), sorted by start time; one
// removed (a graceful stop) is gone at once, from the list and the keyspace.
func TestTwoDaemonsListedThenOneStops(t *testing.T) {
	t.Parallel()
	st, rdb := newStore(t)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, b := record("a:1:x", t0.Add(time.Minute), 2), record("b:2:y", t0, 0)
	for _, r := range []presence.Record{a, b} {
		if err := st.Publish(ctx, r, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	recs, now, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	redisNow, _ := rdb.Time(ctx).Result()
	if d := redisNow.Sub(now); d < 0 || d > 5*time.Second {
		t.Errorf("list's now %v, Redis TIME %v", now, redisNow)
	}
	list := presence.View(recs, now, "a:1:x")
	if diff := cmp.Diff([]string{"b:2:y", "a:1:x"}, []string{list.Daemons[0].ID, list.Daemons[1].ID}); diff != "" {
		t.Fatalf("order by start (-want +got):\n%s", diff)
	}
	for _, d := range list.Daemons {
		if d.LastSeen.IsZero() || now.Sub(d.LastSeen) > 5*time.Second || d.LastSeen.After(now) {
			t.Errorf("%s: last_seen %v, now %v", d.ID, d.LastSeen, now)
		}
	}
	if !list.Daemons[1].Self || list.Daemons[0].Self {
		t.Errorf("self: %+v", list.Daemons)
	}
	got := list.Daemons[1].Record
	got.LastSeen = time.Time{}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("a's record (-want +got):\n%s", diff)
	}

	if err := st.Remove(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	recs, _, err = st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b:2:y"}, ids(recs)); diff != "" {
		t.Errorf("after a's stop (-want +got):\n%s", diff)
	}
	if n := rdb.Exists(ctx, st.RecordKey(a.ID)).Val(); n != 0 {
		t.Errorf("a's record key still there")
	}
}

// TestKilledDaemonExpires: a publisher that stops beating without removing
// its record (a killed daemon) is listed until its TTL, and never after,
// while the other, beating, stays listed; its index entry goes too.
func TestKilledDaemonExpires(t *testing.T) {
	t.Parallel()
	st, rdb := newStore(t)
	ctx := context.Background()
	ttl := 600 * time.Millisecond
	live, killed := record("live", time.Now(), 0), record("killed", time.Now(), 0)
	if err := st.Publish(ctx, killed, ttl); err != nil {
		t.Fatal(err)
	}
	lastBeat := time.Now()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := st.Publish(ctx, live, ttl); err != nil {
			t.Fatal(err)
		}
		recs, _, err := st.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := ids(recs)
		listed := strings.Contains(strings.Join(got, ","), "killed")
		if listed && time.Since(lastBeat) > ttl+200*time.Millisecond {
			t.Fatalf("killed listed %v after its last beat (TTL %v): %v", time.Since(lastBeat), ttl, got)
		}
		if !strings.Contains(strings.Join(got, ","), "live") {
			t.Fatalf("live daemon not listed: %v", got)
		}
		if !listed {
			if time.Since(lastBeat) < ttl-200*time.Millisecond {
				t.Fatalf("killed gone after %v, before its TTL %v", time.Since(lastBeat), ttl)
			}
			if n := rdb.ZScore(ctx, st.IndexKey(), "killed").Err(); n != redis.Nil {
				t.Errorf("killed still in the index: %v", n)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("killed daemon still listed after 5 s")
}

// TestGarbageRecordLeftOut: a key of the index holding something else than
// a record (a string, a hash with bad JSON) is left out; the others list.
func TestGarbageRecordLeftOut(t *testing.T) {
	t.Parallel()
	st, rdb := newStore(t)
	ctx := context.Background()
	if err := st.Publish(ctx, record("good", time.Now(), 0), time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"str", "badjson", "noseen"} {
		if err := st.Publish(ctx, record(id, time.Now(), 0), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	rdb.Set(ctx, st.RecordKey("str"), "garbage", 0)
	rdb.HSet(ctx, st.RecordKey("badjson"), "rec", "{not json")
	rdb.HDel(ctx, st.RecordKey("noseen"), "seen")
	recs, _, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"good"}, ids(recs)); diff != "" {
		t.Errorf("listed (-want +got):\n%s", diff)
	}
}

// TestClusterOneSlot: on a Redis Cluster every key of the heartbeats is in
// one slot, and publish, list and remove work there.
func TestClusterOneSlot(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Seeds()})
	t.Cleanup(func() { _ = rdb.Close() })
	st := presence.NewStore(rdb, "refrakt:")
	ctx := context.Background()
	slot := redistest.KeySlot(st.IndexKey())
	for _, id := range []string{"a", "b:1:ff", "host.example:123:abcdef"} {
		if s := redistest.KeySlot(st.RecordKey(id)); s != slot {
			t.Errorf("record %s in slot %d, the index in %d", id, s, slot)
		}
		if err := st.Publish(ctx, record(id, time.Now(), 0), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	recs, _, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b:1:ff", "host.example:123:abcdef"}, ids(recs), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("listed (-want +got):\n%s", diff)
	}
}

// TestClusterReshardFailsTheList: while the daemons' slot is being moved
// (MIGRATING on its master, IMPORTING on the other) and a record has gone
// already, List fails rather than leave that daemon out: a reader says
// Redis is unavailable (503, exit 3), not that the daemon is gone. It used
// to answer the other daemons, no error.
func TestClusterReshardFailsTheList(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Seeds()})
	t.Cleanup(func() { _ = rdb.Close() })
	st := presence.NewStore(rdb, "refrakt:")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range []string{"a", "b"} {
		if err := st.Publish(ctx, record(id, time.Now(), 0), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	src := c.MasterFor(st.IndexKey())
	var dst *redistest.Server
	for _, n := range c.Nodes() {
		if n != src {
			dst = n
			break
		}
	}
	slot := strconv.Itoa(redistest.KeySlot(st.IndexKey()))
	do := func(addr string, args ...string) string {
		t.Helper()
		got, err := redistest.Do(addr, args...)
		if err != nil {
			t.Fatalf("%v at %s: %v", args, addr, err)
		}
		return got
	}
	srcID, dstID := do(src.Addr(), "CLUSTER", "MYID"), do(dst.Addr(), "CLUSTER", "MYID")
	do(dst.Addr(), "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID)
	do(src.Addr(), "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID)
	do(src.Addr(), "MIGRATE", "127.0.0.1", strconv.Itoa(dst.Port), st.RecordKey("a"), "0", "5000")
	recs, _, err := st.List(ctx)
	if err == nil {
		t.Errorf("List during the reshard, a record moved: %v, no error; want an error", ids(recs))
	} else {
		t.Logf("List: %v", err)
	}
}
