package daemon

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/refrakt/refrakt/internal/config"
)

func TestMetricsEndpoint(t *testing.T) {
	tests := []struct {
		name   string
		cfg    func(*config.Config)
		path   string
		token  string
		status int
	}{
		{"open by default", nil, "/metrics", "", 200},
		{"bearer missing", func(c *config.Config) { c.PrometheusBearerToken = "scrape-secret" }, "/metrics", "", 401},
		{"bearer wrong", func(c *config.Config) { c.PrometheusBearerToken = "scrape-secret" }, "/metrics", "scrape-secreT", 401},
		{"bearer right", func(c *config.Config) { c.PrometheusBearerToken = "scrape-secret" }, "/metrics", "scrape-secret", 200},
		{"developer token is not a scrape token", func(c *config.Config) { c.PrometheusBearerToken = "scrape-secret" }, "/metrics", devToken, 401},
		{"disabled", func(c *config.Config) { c.PrometheusEnabled = false }, "/metrics", "", 404},
		{"custom route", func(c *config.Config) { c.PrometheusRoute = "/internal/prom" }, "/internal/prom", "", 200},
		{"custom route moves it", func(c *config.Config) { c.PrometheusRoute = "/internal/prom" }, "/metrics", "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mut []func(*config.Config)
			if tt.cfg != nil {
				mut = append(mut, tt.cfg)
			}
			s := newTestServer(t, mut...)
			req := httptest.NewRequest("GET", tt.path, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body.String())
			}
			if tt.status == 200 {
				body, _ := io.ReadAll(rec.Body)
				for _, want := range []string{"refrakt_build_info{", "go_goroutines", "process_cpu_seconds_total"} {
					if !strings.Contains(string(body), want) {
						t.Errorf("metrics lack %s", want)
					}
				}
			}
		})
	}
}

func TestHTTPMetricsUseRoutePatterns(t *testing.T) {
	s := newTestServer(t)
	for i := 0; i < 200; i++ {
		do(t, s, "GET", "/no/such/path/"+strings.Repeat("x", i%7)+string(rune('a'+i%26)), "", "")
	}
	do(t, s, "GET", "/healthz", "", "")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if !strings.Contains(body, `refrakt_http_requests_total{code="200",route="GET /healthz"} 1`) {
		t.Errorf("healthz not counted by pattern:\n%s", grep(body, "refrakt_http_requests_total"))
	}
	if !strings.Contains(body, `refrakt_http_requests_total{code="404",route="unmatched"} 200`) {
		t.Errorf("unknown paths not folded into route=unmatched:\n%s", grep(body, "refrakt_http_requests_total"))
	}
	if strings.Contains(body, "/no/such") {
		t.Error("a raw path reached a metric label")
	}
}

// TestHTTPMetricsRouteOfEarlyAnswers: a request refused before routing (413
// from its Content-Length) is counted under its route, not as unmatched;
// a method no route serves on a known path stays unmatched.
func TestHTTPMetricsRouteOfEarlyAnswers(t *testing.T) {
	s := newTestServer(t)
	req := httptest.NewRequest("POST", "/run", strings.NewReader("{}"))
	req.ContentLength = MaxBody + 1
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != 413 {
		t.Fatalf("status %d, want 413", rec.Code)
	}
	if resp, _ := do(t, s, "PUT", "/run", "", "{}"); resp.StatusCode != 405 {
		t.Fatalf("PUT /run: status %d, want 405", resp.StatusCode)
	}
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`refrakt_http_requests_total{code="413",route="POST /run"} 1`,
		`refrakt_http_requests_total{code="405",route="unmatched"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("want %s in:\n%s", want, grep(body, "refrakt_http_requests_total"))
		}
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
