package daemon

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/redistest"
)

// newLoggingURLServer is newURLServer logging, at info level and up, into
// the buffer it returns (the components take their logger when built).
func newLoggingURLServer(t *testing.T, url string) (*Server, *syncBuffer) {
	t.Helper()
	client, kind, err := OpenRedis(context.Background(), url, "auto")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	logs := &syncBuffer{}
	cfg := testConfig(func(c *config.Config) { c.RateLimitEnabled = false })
	s, err := NewServer(Deps{Config: cfg, Logger: slog.New(slog.NewTextHandler(logs, nil)), Backend: &Backend{Kind: kind, Redis: client, Prefix: cfg.Prefix}})
	if err != nil {
		t.Fatal(err)
	}
	return s, logs
}

// TestQueueOutageEndLogged (fail30 F6): a job queue outage logged as
// "job queue backend failing" is logged as over too, once, at the first
// call that succeeds after it: "job queue backend answers again". On a
// Redis Cluster only a call that reads every master (stats) ends it: a
// queue on a healthy master answers, and a tick leaves out a failing
// master's queues, while that master is still down.
// The end was never logged.
func TestQueueOutageEndLogged(t *testing.T) {
	t.Parallel()
	const failing, again = `msg="job queue backend failing"`, `msg="job queue backend answers again"`
	t.Run("server", func(t *testing.T) {
		t.Parallel()
		r := redistest.Start(t)
		s, logs := newLoggingURLServer(t, r.URL())
		r.Pause()
		defer r.Resume()
		if resp, body := do(t, s, "GET", "/api/dev/jobs", devToken, ""); resp.StatusCode != 503 {
			t.Fatalf("list with Redis paused: %d %v, want 503", resp.StatusCode, body)
		}
		r.Resume()
		for range 2 {
			if resp, body := do(t, s, "GET", "/api/dev/jobs", devToken, ""); resp.StatusCode != 200 {
				t.Fatalf("list with Redis back: %d %v", resp.StatusCode, body)
			}
		}
		text := logs.String()
		if strings.Count(text, failing) != 1 || strings.Count(text, again) != 1 || !strings.Contains(text, again+" op=list") ||
			strings.Index(text, failing) > strings.Index(text, again) {
			t.Errorf("log, want one %s, then one %s op=list:\n%s", failing, again, text)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c := redistest.StartCluster(t, 3, "--cluster-node-timeout", "60000")
		down, up := c.MasterFor("refrakt:queues"), c.Nodes()[0]
		if up == down {
			up = c.Nodes()[1]
		}
		s, logs := newLoggingURLServer(t, c.URL())
		held, healthy := queueOnMaster(c, down, "o"), queueOnMaster(c, up, "o")
		down.Pause()
		defer down.Resume()
		if resp, body := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping","queue":"`+held+`"}`); resp.StatusCode != 503 {
			t.Fatalf("enqueue in %s with its master paused: %d %v, want 503", held, resp.StatusCode, body)
		}
		if resp, body := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping","queue":"`+healthy+`"}`); resp.StatusCode != 202 {
			t.Fatalf("enqueue in %s on a healthy master: %d %v, want 202", healthy, resp.StatusCode, body)
		}
		if text := logs.String(); !strings.Contains(text, failing) || strings.Contains(text, again) {
			t.Errorf("log after an enqueue on a healthy master, another master down: want %s and no %s:\n%s", failing, again, text)
		}
		down.Resume()
		if resp, body := do(t, s, "GET", "/api/obs/jobs", devToken, ""); resp.StatusCode != 200 {
			t.Fatalf("/api/obs/jobs with every master back: %d %v", resp.StatusCode, body)
		}
		if text := logs.String(); strings.Count(text, again) != 1 || !strings.Contains(text, again+" op=stats") {
			t.Errorf("log, want one %s op=stats once every master answers:\n%s", again, text)
		}
	})
	// A tick leaves out the queues of a master marked failing, so one that
	// succeeds meanwhile does not end the outage's log (review code30 C2:
	// "answers again op=tick" with the master still paused).
	t.Run("cluster tick", func(t *testing.T) {
		t.Parallel()
		c := redistest.StartCluster(t, 3, "--cluster-node-timeout", "60000")
		index := c.MasterFor("refrakt:queues")
		var down, up *redistest.Server
		for _, n := range c.Nodes() {
			switch {
			case n == index:
			case down == nil:
				down = n
			default:
				up = n
			}
		}
		s, logs := newLoggingURLServer(t, c.URL())
		for _, q := range []string{queueOnMaster(c, down, "t"), queueOnMaster(c, up, "t")} {
			if resp, body := do(t, s, "POST", "/api/dev/jobs/enqueue", devToken, `{"type":"ping","queue":"`+q+`","delay_ms":60000}`); resp.StatusCode != 202 {
				t.Fatalf("enqueue in %s: %d %v", q, resp.StatusCode, body)
			}
		}
		down.Pause()
		defer down.Resume()
		for i := range 3 {
			resp, _ := do(t, s, "POST", "/api/dev/jobs/tick", devToken, "")
			if i == 0 && resp.StatusCode != 503 {
				t.Fatalf("the first tick with a master paused: %d, want 503", resp.StatusCode)
			}
		}
		if text := logs.String(); !strings.Contains(text, failing) || strings.Contains(text, again) {
			t.Errorf("log after ticks with a master still paused: want %s and no %s:\n%s", failing, again, text)
		}
	})
}

// TestPublishOutageEndLogged (fail30 F6): a failed publication of the job
// queue's settings, logged as "cannot publish … retrying", is followed by
// "published … again" at the first write that succeeds, once. It was not.
func TestPublishOutageEndLogged(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	s, logs := newLoggingURLServer(t, r.URL())
	rb := redisbroker.New(s.backend.Redis, redisbroker.Options{Prefix: s.backend.Prefix})
	failed := &core.LogThrottle{Logger: s.log, Msg: "cannot publish the job queue's settings (JOB_HISTORY, admission bounds, retry backoff) to Redis; retrying",
		Every: backendLogEvery, Recovered: "published the job queue's settings to Redis again"}
	write := func(c context.Context) error {
		return rb.PublishSettings(c, queue.AdmissionConfig{}, queue.DefaultBackoff, 0, limitsPublishTTL)
	}
	ctx := context.Background()
	publish(ctx, failed, write)
	r.Pause()
	defer r.Resume()
	publish(ctx, failed, write)
	r.Resume()
	publish(ctx, failed, write)
	publish(ctx, failed, write)
	text := logs.String()
	if strings.Count(text, "cannot publish the job queue's settings") != 1 || strings.Count(text, "published the job queue's settings to Redis again") != 1 {
		t.Errorf("log, want one failure and one 'published … again':\n%s", text)
	}
}
