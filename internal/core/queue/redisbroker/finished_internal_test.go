package redisbroker

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/redistest"
)

// TestFinishedWalkResumesByID: a walk of the history that takes several
// calls resumes after the last id it looked at, not at an offset within
// its millisecond; a job of that millisecond that leaves it between two
// calls (finished again) made the offset skip a job never looked at.
func TestFinishedWalkResumesByID(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	k := New(rdb, Options{}).keys("fw")
	const at = 1764151200000
	for _, id := range []string{"a", "b", "c", "d", "e"} { // one millisecond; Redis walks it e, d, c, b, a
		if err := rdb.HSet(ctx, k.job+id, "id", id, "queue", "fw", "status", "succeeded", "finished_at", at).Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.ZAdd(ctx, k.history, redis.Z{Score: at, Member: id}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var listed []string
	from, last := "", ""
	call := func() int64 {
		t.Helper()
		r, err := finishedScript.Run(ctx, rdb, []string{k.history, k.job}, "succeeded", 5, "", from, last, 2).Slice()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range r[4:] {
			listed = append(listed, parseJob(v.([]any)).ID)
		}
		from, _ = r[1].(string)
		last, _ = r[2].(string)
		return r[0].(int64)
	}
	if more := call(); more != 1 {
		t.Fatalf("first call of budget 2 over 5 entries: more = %d", more)
	}
	// e is finished again, a millisecond later: it leaves the walk's millisecond.
	if err := rdb.ZAdd(ctx, k.history, redis.Z{Score: at + 1, Member: "e"}).Err(); err != nil {
		t.Fatal(err)
	}
	for call() == 1 {
	}
	if diff := cmp.Diff([]string{"e", "d", "c", "b", "a"}, listed); diff != "" {
		t.Errorf("jobs listed (-want +got):\n%s", diff)
	}
}
