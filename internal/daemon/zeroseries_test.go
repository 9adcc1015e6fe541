package daemon

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/redistest"
)

// TestCountersStartAtZero: a fresh daemon's scrape shows at 0 the series of
// the counters whose label values are known in advance, so that increase()
// and rate() see their first event (scripts/alerts_test.yml: "first deaths
// of a counter that starts at 0"): every job transition, every enqueue
// source, every backend operation, and the default queue's admission
// rejections for the reasons its bounds may give; none for a reason of a
// bound that is off.
func TestCountersStartAtZero(t *testing.T) {
	var transitions, sources, queueOps, limiterOps []string
	for _, tr := range queue.Transitions {
		transitions = append(transitions, fmt.Sprintf(`refrakt_job_status_transitions_total{from_status=%q,to_status=%q} 0`, tr.From, tr.To))
	}
	for _, src := range queue.Sources {
		sources = append(sources, fmt.Sprintf(`refrakt_job_enqueued_total{source=%q} 0`, src))
	}
	for _, op := range queue.BackendOps {
		queueOps = append(queueOps, fmt.Sprintf(`refrakt_backend_errors_total{op="queue_%s"} 0`, op))
	}
	for _, op := range ratelimit.BackendOps {
		limiterOps = append(limiterOps, fmt.Sprintf(`refrakt_backend_errors_total{op="ratelimit_%s"} 0`, op))
	}
	always := slices.Concat(transitions, sources, queueOps, limiterOps, []string{
		// The series RefraktJobsDying's ratio reads, and others, named in full.
		`refrakt_job_status_transitions_total{from_status="running",to_status="dead"} 0`,
		`refrakt_job_status_transitions_total{from_status="running",to_status="succeeded"} 0`,
		`refrakt_job_enqueued_total{source="api"} 0`,
		`refrakt_backend_errors_total{op="queue_tick"} 0`,
		`refrakt_backend_errors_total{op="ratelimit_take"} 0`,
	})
	tests := []struct {
		name   string
		redis  bool
		mutate func(*config.Config)
		want   []string
		absent []string // no line of the scrape starts with these
	}{
		{"memory, admission off", false, func(*config.Config) {}, always,
			[]string{"refrakt_admission_rejections_total{"}},
		{"memory, QUEUE_MAX_PENDING", false, func(c *config.Config) { c.QueueMaxPending = 5 },
			append(slices.Clone(always),
				`refrakt_admission_rejections_total{queue="default",reason="max_pending"} 0`,
				`refrakt_admission_rejections_total{queue="default",reason="backend"} 0`),
			[]string{`refrakt_admission_rejections_total{queue="default",reason="max_age"}`}},
		{"redis, both bounds", true, func(c *config.Config) { c.QueueMaxPending, c.QueueMaxAge = 5, time.Minute },
			append(slices.Clone(always),
				`refrakt_admission_rejections_total{queue="default",reason="max_pending"} 0`,
				`refrakt_admission_rejections_total{queue="default",reason="max_age"} 0`,
				`refrakt_admission_rejections_total{queue="default",reason="backend"} 0`),
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s *Server
			if tt.redis {
				s, _ = newRedisServer(t, redistest.Start(t), tt.mutate)
			} else {
				s = newTestServer(t, tt.mutate)
			}
			lines := strings.Split(scrape(t, s), "\n")
			for _, w := range tt.want {
				if !slices.Contains(lines, w) {
					t.Errorf("a fresh daemon's scrape lacks %s", w)
				}
			}
			for _, a := range tt.absent {
				if i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, a) }); i >= 0 {
					t.Errorf("a fresh daemon's scrape has %s", lines[i])
				}
			}
			// One series per transition, source and backend op, none other.
			if n := testutil.CollectAndCount(s.metrics.JobTransitions); n != len(queue.Transitions) {
				t.Errorf("%d transition series, want %d", n, len(queue.Transitions))
			}
			if n := testutil.CollectAndCount(s.metrics.JobEnqueued); n != len(queue.Sources) {
				t.Errorf("%d enqueue source series, want %d", n, len(queue.Sources))
			}
			if n, want := testutil.CollectAndCount(s.metrics.BackendErrors), len(queue.BackendOps)+len(ratelimit.BackendOps); n != want {
				t.Errorf("%d backend error series, want %d", n, want)
			}
		})
	}
}

// TestBackendOpsListed: queue.BackendOps and ratelimit.BackendOps, whose
// series start at 0, are exactly the ops their packages report failures
// of: an op missing from its list would appear only at its first failure,
// which increase() does not see.
func TestBackendOpsListed(t *testing.T) {
	for _, tt := range []struct {
		dir  string
		list []string
	}{
		{"../core/queue", queue.BackendOps},
		{"../core/ratelimit", ratelimit.BackendOps},
	} {
		t.Run(tt.dir, func(t *testing.T) {
			files, err := filepath.Glob(filepath.Join(tt.dir, "*.go"))
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, name := range files {
				if strings.HasSuffix(name, "_test.go") {
					continue
				}
				f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
				if err != nil {
					t.Fatal(err)
				}
				ast.Inspect(f, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok || len(call.Args) == 0 {
						return true
					}
					var name string
					switch f := call.Fun.(type) {
					case *ast.Ident:
						name = f.Name
					case *ast.SelectorExpr:
						name = f.Sel.Name
					}
					// The calls that name the op of a failure; the others
					// pass on an op given to them.
					if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING && slices.Contains([]string{"BackendError", "backendErr", "backendFailed"}, name) {
						op, _ := strconv.Unquote(lit.Value)
						seen[op] = true
					}
					return true
				})
			}
			got := slices.Sorted(maps.Keys(seen))
			want := slices.Sorted(slices.Values(tt.list))
			if len(got) == 0 {
				t.Fatal("found no failure reported: the scan is broken")
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("ops reported (-listed +found):\n%s", d)
			}
		})
	}
}
