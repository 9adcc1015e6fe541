package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/queue/webhook"
	"github.com/refrakt/refrakt/internal/daemontest"
)

// hookReceiver is a webhook receiver answering with answer(n, w), n the
// delivery's number from 1; the headers and bodies it saw come on seen.
func hookReceiver(t *testing.T, answer func(n int, w http.ResponseWriter)) (string, chan *http.Request) {
	t.Helper()
	seen := make(chan *http.Request, 16)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c := r.Clone(context.Background())
		c.Body = io.NopCloser(strings.NewReader(string(b)))
		seen <- c
		answer(int(calls.Add(1)), w)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, seen
}

// waitFinished polls GET /run/{id} until the job is succeeded or dead, and
// returns it.
func waitFinished(t *testing.T, h http.Handler, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := do(t, h, "GET", "/run/"+id, "", "")
		if st := str(body, "status"); st == "succeeded" || st == "dead" {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not finished within 10s: %v", id, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func webhookServer(t *testing.T, url string) *Server {
	return startJobsServer(t, func(c *config.Config) {
		c.JobWebhooks = []webhook.Target{{Type: "email.send", URL: url + "/jobs/email"}}
		c.JobRetryBase = 10 * time.Millisecond
		c.JobRetryMax = 20 * time.Millisecond
	})
}

// TestWebhookJobOverPublicRun: POST /run of a webhook type is delivered to
// the receiver, and GET /run/{id} shows its answer as the result.
func TestWebhookJobOverPublicRun(t *testing.T) {
	url, seen := hookReceiver(t, func(_ int, w http.ResponseWriter) { io.WriteString(w, `{"sent":1}`) })
	s := webhookServer(t, url)
	resp, body := do(t, s, "POST", "/run", "", `{"type":"email.send","payload":{"to":"a@b"},"queue":"mail"}`)
	if resp.StatusCode != 202 {
		t.Fatalf("POST /run: %d %v", resp.StatusCode, body)
	}
	id := str(body, "id")
	j := waitFinished(t, s, id)
	if res, _ := json.Marshal(j["result"]); str(j, "status") != "succeeded" || string(res) != `{"sent":1}` || num(j, "attempts") != 1 {
		t.Fatalf("job %v; want succeeded with the receiver's answer", j)
	}
	r := <-seen
	b, _ := io.ReadAll(r.Body)
	if r.Method != "POST" || r.URL.Path != "/jobs/email" || string(b) != `{"to":"a@b"}` || r.Header.Get("Refrakt-Job-Id") != id ||
		r.Header.Get("Refrakt-Job-Queue") != "mail" || r.Header.Get("Refrakt-Job-Type") != "email.send" || r.Header.Get("Refrakt-Job-Attempt") != "1" ||
		!strings.HasPrefix(r.Header.Get("User-Agent"), "refrakt/") {
		t.Errorf("delivery %s %s %s %v", r.Method, r.URL.Path, b, r.Header)
	}
	_, obs := do(t, s, "GET", "/api/obs/jobs", opToken, "")
	if types, _ := json.Marshal(obs["types"]); !strings.Contains(string(types), `"email.send"`) {
		t.Errorf("/api/obs/jobs types %s; want email.send among them", types)
	}
}

// TestWebhookRetried: a receiver answering 500, then 200: the first attempt
// fails with the status and the body's start, the retry succeeds.
func TestWebhookRetried(t *testing.T) {
	url, seen := hookReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			w.WriteHeader(500)
			io.WriteString(w, "database down")
			return
		}
		io.WriteString(w, "ok")
	})
	s := webhookServer(t, url)
	_, body := do(t, s, "POST", "/run", "", `{"type":"email.send","max_retries":3}`)
	j := waitFinished(t, s, str(body, "id"))
	if str(j, "status") != "succeeded" || num(j, "attempts") != 2 || j["result"] != "ok" {
		t.Fatalf("job %v; want succeeded at attempt 2 with result \"ok\"", j)
	}
	if r := <-seen; r.Header.Get("Refrakt-Job-Attempt") != "1" {
		t.Errorf("first attempt header %q", r.Header.Get("Refrakt-Job-Attempt"))
	}
	if r := <-seen; r.Header.Get("Refrakt-Job-Attempt") != "2" {
		t.Errorf("second attempt header %q", r.Header.Get("Refrakt-Job-Attempt"))
	}
}

// TestWebhookFailureIsTheAttempts: a receiver answering 503 makes the job
// dead after its retries, last_error naming the status and the body.
func TestWebhookFailureIsTheAttempts(t *testing.T) {
	url, _ := hookReceiver(t, func(_ int, w http.ResponseWriter) {
		w.WriteHeader(503)
		io.WriteString(w, "busy\n")
	})
	s := webhookServer(t, url)
	_, body := do(t, s, "POST", "/run", "", `{"type":"email.send","max_retries":1}`)
	j := waitFinished(t, s, str(body, "id"))
	if str(j, "status") != "dead" || num(j, "attempts") != 2 || str(j, "last_error") != "webhook answered 503 Service Unavailable: busy" {
		t.Fatalf("job %v; want dead after 2 attempts, last_error naming 503 and the body", j)
	}
}

// TestWebhookTimeout: a timeout_ms shorter than a slow receiver ends the
// attempt as timed out.
func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	url, _ := hookReceiver(t, func(int, http.ResponseWriter) { <-release })
	t.Cleanup(func() { close(release) }) // before the receiver's Close (cleanups run last first)
	s := webhookServer(t, url)
	_, body := do(t, s, "POST", "/run", "", `{"type":"email.send","max_retries":0,"timeout_ms":100}`)
	j := waitFinished(t, s, str(body, "id"))
	if str(j, "status") != "dead" || !strings.Contains(str(j, "last_error"), "timed out") {
		t.Fatalf("job %v; want dead, timed out", j)
	}
}

// TestWebhookSecretNeverShown: the real daemon with JOB_WEBHOOK_SECRET signs
// its deliveries, and the secret is in none of its log lines (debug level,
// start to stop) nor its obs and snapshot answers.
func TestWebhookSecretNeverShown(t *testing.T) {
	t.Parallel()
	const secret = "whsec-NeverShown-0123456789"
	url, seen := hookReceiver(t, func(_ int, w http.ResponseWriter) { io.WriteString(w, `"done"`) })
	d := daemontest.Start(t, []string{"JOB_WEBHOOKS=report=" + url + "/r", "JOB_WEBHOOK_SECRET=" + secret, "LOG_LEVEL=debug"})
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	resp, b := d.Call("POST", "/run", `{"type":"report","payload":[1,2]}`)
	if resp.StatusCode != 202 {
		t.Fatalf("POST /run: %d %s", resp.StatusCode, b)
	}
	var r *http.Request
	select {
	case r = <-seen:
	case <-time.After(10 * time.Second):
		t.Fatalf("no delivery\n%s", d.Log())
	}
	body, _ := io.ReadAll(r.Body)
	if err := webhook.Verify(r.Header.Get("Refrakt-Signature"), []byte(secret), body, time.Now(), time.Minute); err != nil {
		t.Errorf("delivery not signed with the secret: %v (%q)", err, r.Header.Get("Refrakt-Signature"))
	}
	for _, path := range []string{"/api/obs/jobs", "/api/obs/snapshot", "/api/dev/jobs"} {
		resp, b := d.Call("GET", path, "")
		if resp.StatusCode != 200 || strings.Contains(string(b), secret) || (path == "/api/obs/jobs" && !strings.Contains(string(b), `"report"`)) {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	d.Signal(syscall.SIGTERM)
	if code := d.Wait(15 * time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	log := d.Log()
	if strings.Contains(log, secret) || !strings.Contains(log, "job_webhooks=report") || !strings.Contains(log, "job_webhook_secret=set") {
		t.Errorf("the log shows the secret, or not the types and the secret as set:\n%s", log)
	}
}

// TestServeRefusesBadWebhooks: a bad JOB_WEBHOOKS or JOB_WEBHOOK_SECRET
// stops `serve` with exit 2 and one line naming the setting, quoting no
// credential of the URL nor the secret.
func TestServeRefusesBadWebhooks(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ env, want string }{
		{"JOB_WEBHOOKS=report=https://bob:Pa55w0rdX@h/r", "refrakt: JOB_WEBHOOKS: pair 1: the URL holds user info"},
		{"JOB_WEBHOOKS=ping=https://h/r", "refrakt: JOB_WEBHOOKS: pair 1: its type is a built-in job type"},
		{"JOB_WEBHOOK_SECRET=Pa55w0rdX", "refrakt: JOB_WEBHOOK_SECRET: is 9 bytes; want at least 16"},
	} {
		code, stderr := serveToExit(t, 10*time.Second, []string{tt.env})
		if code != 2 || !strings.HasPrefix(lastLine(stderr), tt.want) || strings.Contains(stderr, "Pa55w0rdX") {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 2, a last line %q, no credential", tt.env, code, stderr, tt.want)
		}
	}
}

// TestWebhookRetryAfter: a receiver's 503 with Retry-After puts the job's
// retry that far out, not at the backoff's 10 ms, as GET /run/{id} shows,
// and last_error says so.
func TestWebhookRetryAfter(t *testing.T) {
	url, _ := hookReceiver(t, func(_ int, w http.ResponseWriter) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(503)
	})
	s := startJobsServer(t, func(c *config.Config) {
		c.JobWebhooks = []webhook.Target{{Type: "email.send", URL: url + "/jobs/email"}}
		c.JobRetryBase = 10 * time.Millisecond
		c.JobRetryMax = 2 * time.Hour
	})
	_, body := do(t, s, "POST", "/run", "", `{"type":"email.send","max_retries":3}`)
	id := str(body, "id")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, j := do(t, s, "GET", "/run/"+id, "", "")
		if str(j, "status") == "failed" {
			runAt, err := time.Parse(time.RFC3339Nano, str(j, "run_at"))
			if err != nil {
				t.Fatalf("run_at %q: %v", str(j, "run_at"), err)
			}
			if wait := time.Until(runAt); wait < 3590*time.Second || wait > 3600*time.Second {
				t.Errorf("retry due in %v, want about 1h (Retry-After: 3600)", wait)
			}
			if want := "webhook answered 503 Service Unavailable, Retry-After 1h0m0s"; str(j, "last_error") != want {
				t.Errorf("last_error %q, want %q", str(j, "last_error"), want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not failed within 10s: %v", id, j)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWebhookNoRetry: through the daemon's queue, a receiver's failed
// answer with Refrakt-No-Retry: true makes the job dead after one attempt
// of six (max_retries 5), over a Retry-After, last_error the answer and
// "(not retried)"; a 500 without it, and one with a malformed value, are
// retried (the receiver answers 200 the second time); a 200 with it
// succeeds.
func TestWebhookNoRetry(t *testing.T) {
	for _, tt := range []struct {
		name       string
		code       int
		value      string
		retryAfter string
		status     string
		attempts   int
		lastErr    string
	}{
		{"422", 422, "true", "", "dead", 1, "webhook answered 422 Unprocessable Entity: bad address (not retried)"},
		{"503 with Retry-After", 503, "true", "3600", "dead", 1, "webhook answered 503 Service Unavailable: bad address (not retried)"},
		{"500 without", 500, "", "", "succeeded", 2, "webhook answered 500 Internal Server Error: bad address"},
		{"422 malformed", 422, "sure", "", "succeeded", 2, "webhook answered 422 Unprocessable Entity: bad address"},
		{"200 with it", 200, "true", "", "succeeded", 1, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url, _ := hookReceiver(t, func(n int, w http.ResponseWriter) {
				if n > 1 {
					io.WriteString(w, "ok")
					return
				}
				if tt.value != "" {
					w.Header().Set(webhook.HeaderNoRetry, tt.value)
				}
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.code)
				io.WriteString(w, "bad address")
			})
			s := webhookServer(t, url)
			_, body := do(t, s, "POST", "/run", "", `{"type":"email.send","max_retries":5}`)
			j := waitFinished(t, s, str(body, "id"))
			if str(j, "status") != tt.status || num(j, "attempts") != tt.attempts || str(j, "last_error") != tt.lastErr {
				t.Fatalf("job %v; want %s after %v attempts, last_error %q", j, tt.status, tt.attempts, tt.lastErr)
			}
		})
	}
}
