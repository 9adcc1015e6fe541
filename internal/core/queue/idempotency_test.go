package queue_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// TestIdempotencyService: on each backend, a key's first enqueue is stored
// and counted; the same request again answers that job, Replayed, counted
// neither as enqueued nor by admission; any field of the request changed
// (payload bytes, max_retries, the default's value spelled out, queue
// apart) is another fingerprint and refused; a batch with one key twice
// in a queue and a malformed key are invalid, storing nothing.
func TestIdempotencyService(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		rec := newRecorder()
		svc := queue.NewService(queue.Deps{Broker: be.new(t, nil), Observer: rec}, queue.Config{})
		req := queue.EnqueueRequest{Type: "echo", Payload: []byte(`{"a":1}`), IdempotencyKey: "k-1"}
		first, err := svc.Submit(ctx, req, queue.SourceAPI)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "first: not a replay", false, first.Replayed)
		again, err := svc.Submit(ctx, req, queue.SourceAPI)
		if err != nil {
			t.Fatal(err)
		}
		diff(t, "again: the first job, replayed", [2]any{first.ID, true}, [2]any{again.ID, again.Replayed})
		diff(t, "again: as it is now", queue.StatusPending, again.Status)
		three := 3
		same := req
		same.MaxRetries = &three // the default, spelled out
		if j, err := svc.Enqueue(ctx, same, queue.SourceCLI); err != nil || j.ID != first.ID {
			t.Errorf("the default max_retries given: %v, %v; want a replay of %s", j, err, first.ID)
		}
		diff(t, "counted once", map[string]int{queue.SourceAPI: 1}, rec.snapshot()["enqueued"])

		for _, c := range []struct {
			name string
			mod  func(*queue.EnqueueRequest)
		}{
			{"payload", func(r *queue.EnqueueRequest) { r.Payload = []byte(`{"a":2}`) }},
			{"timeout", func(r *queue.EnqueueRequest) { r.TimeoutMS = 5000 }},
			{"type", func(r *queue.EnqueueRequest) { r.Type = "ping"; r.Payload = nil }},
			{"max_retries", func(r *queue.EnqueueRequest) { n := 0; r.MaxRetries = &n }},
			{"delay", func(r *queue.EnqueueRequest) { r.DelayMS = 1000 }},
			{"interval", func(r *queue.EnqueueRequest) { r.IntervalSeconds = 60 }},
		} {
			r := req
			c.mod(&r)
			_, err := svc.Enqueue(ctx, r, queue.SourceAPI)
			if core.ErrorCode(err) != core.CodeKeyReused || !strings.Contains(core.ErrorMessage(err), first.ID) {
				t.Errorf("%s changed: %v (code %q), want %s naming job %s", c.name, err, core.ErrorCode(err), core.CodeKeyReused, first.ID)
			}
		}
		other := req
		other.Queue = "elsewhere"
		if j, err := svc.Enqueue(ctx, other, queue.SourceAPI); err != nil || j.Replayed {
			t.Errorf("the key in another queue: %v, %v; want a new job", j, err)
		}

		_, err = svc.EnqueueBatch(ctx, []queue.EnqueueRequest{
			{Type: "ping", IdempotencyKey: "b"}, {Type: "ping"}, {Type: "ping", IdempotencyKey: "b"},
		}, queue.SourceAPI)
		if core.ErrorCode(err) != core.CodeInvalid || !strings.Contains(err.Error(), `"b"`) {
			t.Errorf("one key twice in a batch: %v, want invalid naming the key", err)
		}
		if _, err := svc.EnqueueBatch(ctx, []queue.EnqueueRequest{
			{Type: "ping", IdempotencyKey: "b"}, {Type: "ping", Queue: "q2", IdempotencyKey: "b"},
		}, queue.SourceAPI); err != nil {
			t.Errorf("one key in two queues of a batch: %v", err)
		}
		for _, key := range []string{"has space", "tab\t", "é", strings.Repeat("x", 256), "nul\x00"} {
			r := queue.EnqueueRequest{Type: "ping", IdempotencyKey: key}
			if _, err := svc.Enqueue(ctx, r, queue.SourceAPI); core.ErrorCode(err) != core.CodeInvalid {
				t.Errorf("key %q: %v, want invalid", key, err)
			}
		}
		if _, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", IdempotencyKey: strings.Repeat("~", 255)}, queue.SourceAPI); err != nil {
			t.Errorf("a 255-byte key: %v", err)
		}
		st, err := svc.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var enq int64
		for _, s := range st {
			enq += s.Enqueued
		}
		diff(t, "stored: first, elsewhere, the batch of two queues, the 255-byte key", int64(5), enq)
		// The payload as the CLI's two drivers send it: spaced, or
		// compacted with <, > and & escaped (json.Marshal's).
		for _, p := range []string{`{ "a" : 1 }`, "{\n  \"a\": 1\n}"} {
			spaced := req
			spaced.Payload = []byte(p)
			if j, err := svc.Enqueue(ctx, spaced, queue.SourceCLI); err != nil || j.ID != first.ID {
				t.Errorf("the payload %q: %v, %v; want a replay of %s", p, j, err, first.ID)
			}
		}
		html := req
		html.IdempotencyKey, html.Payload = "k-html", []byte(`{"s":"<a&b>"}`)
		hj, err := svc.Enqueue(ctx, html, queue.SourceCLI)
		if err != nil {
			t.Fatal(err)
		}
		html.Payload = []byte(`{"s":"\u003ca\u0026b\u003e"}`)
		if j, err := svc.Enqueue(ctx, html, queue.SourceAPI); err != nil || j.ID != hj.ID {
			t.Errorf("the payload HTML-escaped: %v, %v; want a replay of %s", j, err, hj.ID)
		}
		// Another caller's scope: another key, whatever the request.
		scoped := req
		scoped.IdempotencyScope = queue.IdempotencyScope("ip\x00192.0.2.1\x00")
		sj, err := svc.Enqueue(ctx, scoped, queue.SourceAPI)
		if err != nil || sj.Replayed || sj.ID == first.ID {
			t.Fatalf("the key in another scope: %v, %v; want a new job", sj, err)
		}
		if j, err := svc.Enqueue(ctx, scoped, queue.SourceAPI); err != nil || j.ID != sj.ID {
			t.Errorf("the scoped key again: %v, %v; want a replay of %s", j, err, sj.ID)
		}
		scoped.Payload = []byte(`{"a":9}`)
		if _, err := svc.Enqueue(ctx, scoped, queue.SourceAPI); core.ErrorCode(err) != core.CodeKeyReused || !strings.Contains(core.ErrorMessage(err), `"k-1"`) ||
			strings.Contains(core.ErrorMessage(err), " k-1") {
			t.Errorf("the scoped key with another payload: %v; want %s naming the key as given", err, core.CodeKeyReused)
		}
	})
}

// TestIdempotencyManyKeysKept: the memory broker's sweep of expired keys
// (when a queue's records double) keeps every live one: 100 keys, each
// replayed after all were made.
func TestIdempotencyManyKeysKept(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ctx := context.Background()
		svc := queue.NewService(queue.Deps{Broker: be.new(t, nil)}, queue.Config{})
		ids := map[string]string{}
		for i := range 100 {
			k := fmt.Sprintf("k-%d", i)
			j, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", IdempotencyKey: k}, queue.SourceAPI)
			if err != nil {
				t.Fatal(err)
			}
			ids[k] = j.ID
		}
		for k, id := range ids {
			j, err := svc.Enqueue(ctx, queue.EnqueueRequest{Type: "ping", IdempotencyKey: k}, queue.SourceAPI)
			if err != nil || !j.Replayed || j.ID != id {
				t.Fatalf("key %s again: %v, %v; want a replay of %s", k, j, err, id)
			}
		}
	})
}
