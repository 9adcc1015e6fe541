package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/queue"
)

// TestWorkerQueuesShownAndWarned (wq40): a daemon with WORKER_QUEUES shows
// its set and order in GET /api/obs/daemons (absent without a set); in
// manual mode, where there are no workers to give queues to, it starts and
// warns that the setting has no effect, and its heartbeat carries neither
// field (rvwq40 NIT-2: jobs daemons showed a set for WORKERS 0).
func TestWorkerQueuesShownAndWarned(t *testing.T) {
	for _, tt := range []struct {
		name    string
		workers int
		queues  []queue.WorkerQueue
		order   string
		shown   bool
		warn    bool
	}{
		{"set, workers", 2, []queue.WorkerQueue{{Name: "critical", Weight: 1}, {Name: "low", Weight: 1}}, queue.OrderStrict, true, false},
		{"set, manual mode", 0, []queue.WorkerQueue{{Name: "a", Weight: 3}}, queue.OrderWeighted, false, true},
		{"no set", 0, nil, queue.OrderWeighted, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logged strings.Builder
			cfg := testConfig(func(c *config.Config) {
				c.WorkerConcurrency, c.WorkerQueues, c.WorkerQueueOrder = tt.workers, tt.queues, tt.order
			})
			s, err := NewServer(Deps{Config: cfg, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer s.Stop(context.Background())
			resp, body := do(t, s, http.MethodGet, "/api/obs/daemons", devToken, "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /api/obs/daemons: %d %v", resp.StatusCode, body)
			}
			d := body["daemons"].([]any)[0].(map[string]any)
			qs, hasQueues := d["queues"]
			order, hasOrder := d["queue_order"]
			if !tt.shown {
				if hasQueues || hasOrder {
					t.Errorf("queues %v, queue_order %v; want neither", qs, order)
				}
			} else {
				list, _ := qs.([]any)
				var first map[string]any
				if len(list) > 0 {
					first, _ = list[0].(map[string]any)
				}
				if len(list) != len(tt.queues) || first["name"] != tt.queues[0].Name || first["weight"] != float64(tt.queues[0].Weight) || order != tt.order {
					t.Errorf("queues %v, queue_order %v; want %v, %s", qs, order, tt.queues, tt.order)
				}
			}
			if got := strings.Contains(logged.String(), "WORKER_QUEUES has no effect in manual mode"); got != tt.warn {
				t.Errorf("warned=%v, want %v; log:\n%s", got, tt.warn, logged.String())
			}
		})
	}
}
