package redisbroker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/redistest"
)

// beforeCron is the finish script of the versions before cron schedules:
// this one with an "ok"'s next_at read as 0 (nothing else changed).
var beforeCron = newScript(strings.Replace(finishScript.src,
	"tonumber(f[3]) or 0, tonumber(ARGV[i+4]) or 0", "tonumber(f[3]) or 0, 0", 1))

// TestFinishScriptCronAcrossVersions: a cron job's next run travels in a
// success's retry_ms slot (absolute ms), so the layout stays 5 per
// outcome. The new script schedules a cron job at it; an earlier script,
// which ignores the slot of a success, ends the job succeeded (the
// schedule lost: README, Rolling upgrades) and reads the outcomes after it
// as sent. A non-zero slot on a success of a job without cron (no caller
// sends one) is ignored by the new script too.
func TestFinishScriptCronAcrossVersions(t *testing.T) {
	if beforeCron.src == finishScript.src || beforeCron.Hash() == finishScript.Hash() {
		t.Fatal("the earlier script is the new one: the clause to take out was not found")
	}
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	b := New(rdb, Options{Prefix: "cronmix:"})
	next := time.Now().Add(time.Hour).UnixMilli()
	for _, tt := range []struct {
		name string
		s    *script
		want []string
	}{
		{"earlier script", beforeCron, []string{"succeeded", "succeeded", "failed"}},
		{"new script", finishScript, []string{"scheduled", "succeeded", "failed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q := strings.ReplaceAll(tt.name, " ", "-")
			// a cron job's success with its next run, a plain job's success
			// with a stray slot, a failure after them
			var args []any
			for i, c := range []string{"*/5 * * * *", "", ""} {
				j := &queue.Job{ID: queue.NewID(), Queue: q, Type: "ping", MaxRetries: 5, Source: queue.SourceAPI, Cron: c}
				kind, slot := "ok", next
				if i == 2 {
					kind, slot = "fail", 1000
				}
				args = append(args, j.ID, claimed(t, b, j), kind, "r", slot)
			}
			k := b.keys(q)
			got, _ := runFinish(t, b, tt.s, q, args...)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("statuses %v, want %v", got, tt.want)
			}
			if got[0] == "scheduled" {
				if at, err := rdb.ZScore(ctx, k.scheduled, args[0].(string)).Result(); err != nil || int64(at) != next {
					t.Errorf("the cron job due at %v (%v), want %d", at, err, next)
				}
			}
		})
	}
}
