package redisbroker

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/redistest"
)

// earlierFinish is the finish script of the versions before failures not
// to retry: this one without its "final" clause (nothing else changed).
var earlierFinish = newScript(strings.Replace(finishScript.src, " or ARGV[i+2] == 'final'", "", 1))

// TestFinishScriptAcrossVersions: a new daemon and an earlier one sharing
// a Redis each run their own finish script, under its own SHA, both
// loaded at once; neither misreads the other's outcomes. The earlier
// script given the new "final" kind (which cannot happen: see finishScript)
// takes it for an ordinary failure, retried at once (a final outcome's
// retry_ms is 0), and reads the outcome after it as sent; the new script given
// an earlier caller's "fail" retries as before; only the new script makes
// a "final" failure dead.
func TestFinishScriptAcrossVersions(t *testing.T) {
	if earlierFinish.src == finishScript.src {
		t.Fatal("the earlier script is the new one: the clause to take out was not found")
	}
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	b := New(rdb, Options{Prefix: "mix:"})
	if earlierFinish.Hash() == finishScript.Hash() {
		t.Fatal("both scripts have one SHA")
	}
	// finish runs s on one queue's outcomes, each (id, token, kind), with
	// the retry_ms Finish sends: 0 for "final" (its RetryIn is unset), and
	// returns the statuses and the script's now.
	finish := func(s *script, q string, outs ...[3]string) ([]string, int64) {
		t.Helper()
		var args []any
		for _, o := range outs {
			retryMS := 1000
			if o[2] == "final" {
				retryMS = 0
			}
			args = append(args, o[0], o[1], o[2], "boom", retryMS)
		}
		return runFinish(t, b, s, q, args...)
	}
	// claim enqueues n jobs of 5 retries in queue q and starts them.
	claim := func(q string, n int) [][3]string {
		t.Helper()
		var out [][3]string
		for range n {
			j := &queue.Job{ID: queue.NewID(), Queue: q, Type: "fail", MaxRetries: 5, Source: queue.SourceAPI}
			out = append(out, [3]string{j.ID, claimed(t, b, j), ""})
		}
		return out
	}
	for _, tt := range []struct {
		name  string
		s     *script
		kinds []string
		want  []string
	}{
		{"earlier script, new caller", earlierFinish, []string{"final", "ok"}, []string{"failed", "succeeded"}},
		{"new script, earlier caller", finishScript, []string{"fail", "ok"}, []string{"failed", "succeeded"}},
		{"new script, new caller", finishScript, []string{"final", "fail"}, []string{"dead", "failed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			outs := claim(strings.ReplaceAll(tt.name, " ", "-"), len(tt.kinds))
			for i := range outs {
				outs[i][2] = tt.kinds[i]
			}
			q := strings.ReplaceAll(tt.name, " ", "-")
			got, now := finish(tt.s, q, outs...)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("statuses %v, want %v", got, tt.want)
			}
			if tt.kinds[0] == "final" && got[0] == "failed" {
				// The earlier script's ordinary failure, with the retry_ms
				// 0 of a final outcome: due again at once.
				due, err := rdb.ZScore(ctx, b.keys(q).retry, outs[0][0]).Result()
				if err != nil || int64(due) != now {
					t.Errorf("the earlier script's retry of a final outcome: due at %v (%v), want at once (%d)", due, err, now)
				}
			}
		})
	}
	for _, s := range []*script{earlierFinish, finishScript} {
		if ok, err := s.Exists(ctx, rdb).Result(); err != nil || !ok[0] {
			t.Errorf("script %s not loaded: %v %v", s.Hash(), ok, err)
		}
	}
}

// runFinish runs the finish script s (this version's or an earlier one) on
// queue q's outcomes, 5 arguments each (id, token, kind, result or error,
// retry_ms), and returns the statuses it answers and its now.
func runFinish(t *testing.T, b *Broker, s *script, q string, outcomes ...any) ([]string, int64) {
	t.Helper()
	k := b.keys(q)
	r, err := b.run(context.Background(), s, []string{k.running, k.retry, k.scheduled, k.history, k.dead, k.stats, k.job}, append([]any{0, 100, 0}, outcomes...)...)
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	var got []string
	for _, v := range r.([]any)[1:] {
		got = append(got, v.(string))
	}
	return got, r.([]any)[0].(int64)
}

// claimed enqueues j and starts it, and returns its lease's fencing token
// as a finish script takes it.
func claimed(t *testing.T, b *Broker, j *queue.Job) string {
	t.Helper()
	ctx := context.Background()
	if err := b.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
		t.Fatal(err)
	}
	l, err := b.Claim(ctx, j.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(l.Token, 10)
}
