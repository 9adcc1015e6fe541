package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/refrakt/refrakt/internal/testenv"
	"github.com/refrakt/refrakt/internal/version"
)

// names are every metric family refrakt registers (histograms also give
// _bucket, _sum and _count).
func names(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for n := range labelNames(t) {
		out[n] = true
	}
	return out
}

// metricRef finds the metrics an expression names: refrakt's own, the Go and
// process collectors' (registered on the same registry) and Prometheus' up.
var metricRef = regexp.MustCompile(`\b(refrakt_[a-z_]+|go_[a-z_]+|process_[a-z_]+|up)\b`)

func checkExpr(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	refs := metricRef.FindAllString(expr, -1)
	if len(refs) == 0 {
		t.Errorf("%s: %q names no refrakt metric", where, expr)
	}
	for _, r := range refs {
		if !known[r] {
			t.Errorf("%s: %q uses %s, which refrakt does not export", where, expr, r)
		}
	}
}

// alertRules is scripts/alerts.yml.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// loadAlerts reads and strictly decodes scripts/alerts.yml; it returns the
// file's bytes too.
func loadAlerts(t *testing.T) (alertRules, []byte) {
	t.Helper()
	b, err := os.ReadFile("../../../scripts/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc alertRules
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	return doc, b
}

// dashboard is scripts/grafana-dashboard.json, as far as the tests read it.
type dashboard struct {
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// loadDashboard reads and decodes scripts/grafana-dashboard.json.
func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("../../../scripts/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash dashboard
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	return dash
}

func TestAlertRulesParseAndUseRealMetrics(t *testing.T) {
	doc, b := loadAlerts(t)
	known := names(t)
	alerts := 0
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			alerts++
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
				t.Errorf("rule %+v lacks alert, expr, severity or summary", r)
			}
			if r.For != "" && !regexp.MustCompile(`^\d+[smh]$`).MatchString(r.For) {
				t.Errorf("%s: bad for %q", r.Alert, r.For)
			}
			checkExpr(t, r.Alert, r.Expr, known)
		}
	}
	for _, want := range []string{"refrakt_queue_pending_jobs", "refrakt_queue_oldest_pending_seconds", "refrakt_backend_errors_total"} {
		if !regexp.MustCompile(want).Match(b) {
			t.Errorf("no alert on %s", want)
		}
	}
	if alerts < 5 {
		t.Errorf("only %d alerts", alerts)
	}
}

// TestAlertRulesPromtool checks scripts/alerts.yml with promtool and runs its
// unit tests, scripts/alerts_test.yml: each alert fires in the case it is
// for, and stays silent on a healthy daemon and on a short stall.
func TestAlertRulesPromtool(t *testing.T) {
	promtool := testenv.Require(t, "promtool", "run scripts/ensure-promtool.sh (make test does) to check the alert rules")
	tests := []struct {
		name string
		args []string
	}{
		{name: "check rules", args: []string{"check", "rules", "../../../scripts/alerts.yml"}},
		{name: "test rules", args: []string{"test", "rules", "../../../scripts/alerts_test.yml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, promtool, tt.args...).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %v: %v\n%s", tt.args, err, out)
			}
		})
	}
}

func TestScrapeConfigParses(t *testing.T) {
	b, err := os.ReadFile("../../../scripts/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Global        map[string]string `yaml:"global"`
		RuleFiles     []string          `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName        string `yaml:"job_name"`
			ScrapeInterval string `yaml:"scrape_interval"`
			MetricsPath    string `yaml:"metrics_path"`
			Scheme         string `yaml:"scheme"`
			Authorization  struct {
				Type            string `yaml:"type"`
				CredentialsFile string `yaml:"credentials_file"`
			} `yaml:"authorization"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	if len(doc.ScrapeConfigs) != 1 {
		t.Fatalf("want one scrape config, got %d", len(doc.ScrapeConfigs))
	}
	sc := doc.ScrapeConfigs[0]
	if sc.JobName != "refrakt" || sc.MetricsPath != "/metrics" || sc.Authorization.Type != "Bearer" || sc.Authorization.CredentialsFile == "" || len(sc.StaticConfigs) == 0 {
		t.Errorf("scrape config incomplete: %+v", sc)
	}
	if len(doc.RuleFiles) != 1 || doc.RuleFiles[0] != "alerts.yml" {
		t.Errorf("rule_files = %v", doc.RuleFiles)
	}
}

func TestGrafanaDashboardUsesRealMetrics(t *testing.T) {
	dash := loadDashboard(t)
	known := names(t)
	seen := map[string]bool{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			checkExpr(t, p.Title, tg.Expr, known)
			for _, r := range metricRef.FindAllString(tg.Expr, -1) {
				seen[r] = true
			}
		}
	}
	for _, want := range []string{"refrakt_queue_pending_jobs", "refrakt_queue_oldest_pending_seconds", "refrakt_job_queue_wait_seconds_bucket", "refrakt_job_duration_seconds_bucket", "refrakt_ratelimit_decisions_total", "refrakt_admission_rejections_total", "refrakt_http_request_duration_seconds_bucket", "process_cpu_seconds_total", "up"} {
		if !seen[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
}

// TestGrafanaDashboardFiltersByInstance: the dashboard has an instance
// variable and every query uses it, so same-named queues of separate
// deployments are never merged into one line.
func TestGrafanaDashboardFiltersByInstance(t *testing.T) {
	dash := loadDashboard(t)
	found := false
	for _, v := range dash.Templating.List {
		if v.Name == "instance" {
			found = true
		}
	}
	if !found {
		t.Error("the dashboard has no instance variable")
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("%s: %q does not filter by $instance", p.Title, tg.Expr)
			}
		}
	}
}

// TestAlertAndDashboardLabelsExist: every label an alert or a dashboard
// panel groups by, joins on or matches is one that a metric of its
// expression carries (or one Prometheus adds: job, instance; le on
// buckets). `sum by (queue)` over a metric without a queue label passes
// promtool and quietly sums everything.
func TestAlertAndDashboardLabelsExist(t *testing.T) {
	labels := labelNames(t)
	var exprs []string
	alerts, _ := loadAlerts(t)
	for _, g := range alerts.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	for _, p := range loadDashboard(t).Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	grouping := regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\(([^)]*)\)`)
	selector := regexp.MustCompile(`\{([^}]*)\}`)
	matcher := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	for _, expr := range exprs {
		have := map[string]bool{"job": true, "instance": true}
		for _, m := range metricRef.FindAllString(expr, -1) {
			for l := range labels[m] {
				have[l] = true
			}
		}
		var used []string
		for _, g := range grouping.FindAllStringSubmatch(expr, -1) {
			for _, l := range regexp.MustCompile(`[,\s]+`).Split(g[1], -1) {
				if l != "" {
					used = append(used, l)
				}
			}
		}
		for _, s := range selector.FindAllStringSubmatch(expr, -1) {
			for _, m := range matcher.FindAllStringSubmatch(s[1], -1) {
				used = append(used, m[1])
			}
		}
		for _, l := range used {
			if !have[l] {
				t.Errorf("%q uses label %q, which none of its metrics has", expr, l)
			}
		}
	}
}

// labelNames maps every metric name refrakt exports (histograms' series
// included) to its label names.
func labelNames(t *testing.T) map[string]map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := New(reg, version.Get())
	m.JobEnqueued.WithLabelValues("api")
	m.JobTransitions.WithLabelValues("pending", "running")
	m.QueuePending.WithLabelValues("q")
	m.QueueRunning.WithLabelValues("q")
	m.QueueOldestPending.WithLabelValues("q")
	m.QueueSampled.WithLabelValues("q")
	m.QueueScheduled.WithLabelValues("q")
	m.QueueRetry.WithLabelValues("q")
	m.QueueDead.WithLabelValues("q")
	m.QueuePaused.WithLabelValues("q")
	m.QueueTotals.Set("q", QueueCounts{})
	m.JobDuration.WithLabelValues("ping", "succeeded")
	m.RateLimitDecisions.WithLabelValues("run", "ip", "allowed")
	m.AdmissionRejections.WithLabelValues("q", "max_pending")
	m.HTTPRequests.WithLabelValues("GET /healthz", "200")
	m.HTTPDuration.WithLabelValues("GET /healthz")
	m.BackendError("x")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{"up": {}}
	for _, mf := range mfs {
		ls := map[string]bool{}
		for _, metric := range mf.GetMetric() {
			for _, lp := range metric.GetLabel() {
				ls[lp.GetName()] = true
			}
		}
		out[mf.GetName()] = ls
		for _, suffix := range []string{"_sum", "_count"} {
			out[mf.GetName()+suffix] = ls
		}
		bucket := map[string]bool{"le": true}
		for l := range ls {
			bucket[l] = true
		}
		out[mf.GetName()+"_bucket"] = bucket
	}
	return out
}
