package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/redistest"
	"github.com/refrakt/refrakt/internal/testenv"
)

// TestE2ENginxAuthRequest runs README's nginx recipe (auth_request with
// ?deny=403, error_page back to 429 with the refusal's Retry-After) with a
// real nginx in front of a real daemon, the daemon with its default
// CLIENT_IP_HEADER: the client's own CF-Connecting-IP, X-Forwarded-For,
// user and tier headers, Authorization and query are the recipe's to
// overwrite or drop. nginx is this test's own process, on a free loopback
// port with its own prefix and config, never the system's service. make test
// installs nginx (scripts/ensure-nginx.sh); elsewhere the test skips without
// it, loudly, and fails under CI.
func TestE2ENginxAuthRequest(t *testing.T) {
	nginx := nginxPath(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "app")
	}))
	defer app.Close()
	d := startDaemon(t, []string{"RATE_LIMITS=api=2/1m"}, "--workers", "0")
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := fmt.Sprintf(`error_log %[1]s/error.log;
pid %[1]s/nginx.pid;
events {}
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server {
        listen 127.0.0.1:%[2]d;
        location /api/ {
            auth_request /_refrakt_check;
            auth_request_set $rl_retry_after $upstream_http_retry_after;
            error_page 403 = @rate_limited;
            proxy_pass %[3]s;
        }
        location = /_refrakt_check {
            internal;
            proxy_pass %[4]s/api/check/api?deny=403;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header CF-Connecting-IP "";
            proxy_set_header X-User-ID "";
            proxy_set_header X-UserID "";
            proxy_set_header X-Tenant-ID "";
            proxy_set_header X-RateLimit-Tier "";
            proxy_set_header Authorization "";
        }
        location @rate_limited {
            add_header Retry-After $rl_retry_after always;
            default_type application/json;
            return 429 '{"error":{"code":"limited","message":"rate limited"}}';
        }
    }
}
`, dir, port, app.URL, d.URL)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", path, "-g", "daemon off; master_process off;")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz-not-routed")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx does not answer: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var got []string
	for i := range 3 {
		// The client's own query (a deny refrakt would have refused
		// before), address, user and tier headers and token are
		// overwritten or dropped by the recipe: each request is keyed on
		// the client nginx sees, at the default tier.
		req, _ := http.NewRequest(http.MethodGet, base+"/api/items?deny=true", nil)
		req.Header.Set("CF-Connecting-IP", fmt.Sprintf("198.51.100.%d", i))
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.101.%d", i))
		req.Header.Set("X-User-ID", fmt.Sprintf("u%d", i))
		req.Header.Set("X-RateLimit-Tier", "premium")
		req.Header.Set("Authorization", "Bearer "+d.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got = append(got, fmt.Sprintf("%d %s retry=%s", resp.StatusCode, strings.TrimSpace(string(body)), resp.Header.Get("Retry-After")))
	}
	want := []string{"200 app retry=", "200 app retry=", `429 {"error":{"code":"limited","message":"rate limited"}} retry=60`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		t.Errorf("through nginx:\n%s\nwant\n%s\nnginx log:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), b)
	}
	if resp, body := d.Call("GET", "/api/obs/rate-limits?key=api:ip:127.0.0.1", ""); resp.StatusCode != 200 || !strings.Contains(string(body), `"remaining":0`) {
		t.Errorf("the bucket of nginx's client 127.0.0.1: %d %s", resp.StatusCode, body)
	}
}

// nginxPath is nginx's path: on PATH, or in /usr/sbin, which a non-root PATH
// often lacks. Without it the test skips, or fails under CI (testenv).
func nginxPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	const sbin = "/usr/sbin/nginx"
	if fi, err := os.Stat(sbin); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return sbin
	}
	testenv.Missing(t, "nginx is not installed (README's nginx recipe is not run): run make test, or apt-get install nginx")
	return ""
}
