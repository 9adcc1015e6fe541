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
// script given the new "final" kind takes it for an ordinary failure
// (retried) and reads the outcome after it as sent; the new script given
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
	// finish runs s on one queue's outcomes, each (id, token, kind).
	finish := func(s *script, q string, outs ...[3]string) []string {
		t.Helper()
		k := b.keys(q)
		args := []any{0, 100, 0}
		for _, o := range outs {
			args = append(args, o[0], o[1], o[2], "boom", 1000)
		}
		r, err := b.run(ctx, s, []string{k.running, k.retry, k.scheduled, k.history, k.dead, k.stats, k.job}, args...)
		if err != nil {
			t.Fatalf("finish: %v", err)
		}
		var got []string
		for _, v := range r.([]any)[1:] {
			got = append(got, v.(string))
		}
		return got
	}
	// claim enqueues n jobs of 5 retries in queue q and starts them.
	claim := func(q string, n int) [][3]string {
		t.Helper()
		var out [][3]string
		for range n {
			j := &queue.Job{ID: queue.NewID(), Queue: q, Type: "fail", MaxRetries: 5, Source: queue.SourceAPI}
			if err := b.Enqueue(ctx, queue.NewJob{Job: j}); err != nil {
				t.Fatal(err)
			}
			l, err := b.Claim(ctx, j.ID, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, [3]string{j.ID, strconv.FormatInt(l.Token, 10), ""})
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
			got := finish(tt.s, strings.ReplaceAll(tt.name, " ", "-"), outs...)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("statuses %v, want %v", got, tt.want)
			}
		})
	}
	for _, s := range []*script{earlierFinish, finishScript} {
		if ok, err := s.Exists(ctx, rdb).Result(); err != nil || !ok[0] {
			t.Errorf("script %s not loaded: %v %v", s.Hash(), ok, err)
		}
	}
}
