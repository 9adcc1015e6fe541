package webhook_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/webhook"
)

const secret = "whsec-0123456789abcdef"

// got is what a receiver saw of one delivery.
type got struct {
	method, path string
	header       http.Header
	body         string
}

// receiver starts a webhook receiver answering with answer, and returns its
// URL and the deliveries it saw.
func receiver(t *testing.T, answer http.HandlerFunc) (string, chan got) {
	t.Helper()
	seen := make(chan got, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select { // never blocks: a redirect followed for ever fills it
		case seen <- got{r.Method, r.URL.Path, r.Header.Clone(), string(b)}:
		default:
		}
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, seen
}

func handler(t *testing.T, c *webhook.Client, url string) queue.Handler {
	t.Helper()
	h, err := c.Handler(url)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func job(payload string) *queue.Job {
	return &queue.Job{ID: "job-1", Queue: "mail", Type: "email.send", Payload: json.RawMessage(payload), Attempts: 3}
}

// TestDeliveryRequest: a POST of the payload as stored, with every header,
// signed with the secret (and not with another).
func TestDeliveryRequest(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	url, seen := receiver(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"sent":true}`) })
	c := webhook.New(webhook.Options{Secret: secret, UserAgent: "refrakt/v9", Now: func() time.Time { return now }})
	res, err := handler(t, c, url+"/jobs/email").RunJob(context.Background(), job(`{"to": "a@b"}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(res) != `{"sent":true}` {
		t.Errorf("result %s", res)
	}
	g := <-seen
	if diff := cmp.Diff([]string{"POST", "/jobs/email", `{"to": "a@b"}`}, []string{g.method, g.path, g.body}); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	for k, v := range map[string]string{"Content-Type": "application/json", "User-Agent": "refrakt/v9",
		"Refrakt-Job-Id": "job-1", "Refrakt-Job-Type": "email.send", "Refrakt-Job-Queue": "mail", "Refrakt-Job-Attempt": "3"} {
		if g.header.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, g.header.Get(k), v)
		}
	}
	sig := g.header.Get("Refrakt-Signature")
	if !strings.HasPrefix(sig, "t=1800000000,v1=") {
		t.Errorf("signature %q", sig)
	}
	if err := webhook.Verify(sig, []byte(secret), []byte(g.body), now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	if err := webhook.Verify(sig, []byte("another-secret-0123456"), []byte(g.body), now, 5*time.Minute); err == nil {
		t.Error("signature verifies with another secret")
	}
	if err := webhook.Verify(sig, []byte(secret), []byte(`{"to": "evil"}`), now, 5*time.Minute); err == nil {
		t.Error("signature verifies another body")
	}
	if err := webhook.Verify(sig, []byte(secret), []byte(g.body), now.Add(time.Hour), 5*time.Minute); err == nil {
		t.Error("an old signature verifies")
	}

	// No payload: null. No secret: no signature.
	c = webhook.New(webhook.Options{})
	if _, err := handler(t, c, url).RunJob(context.Background(), job("")); err != nil {
		t.Fatal(err)
	}
	g = <-seen
	if g.body != "null" || g.header.Get("Refrakt-Signature") != "" {
		t.Errorf("body %q, signature %q; want null and none", g.body, g.header.Get("Refrakt-Signature"))
	}
}

// TestDeliveryOutcomes: what each answer makes of the attempt.
func TestDeliveryOutcomes(t *testing.T) {
	big := strings.Repeat("x", webhook.MaxAnswer+1)
	tests := []struct {
		name    string
		answer  http.HandlerFunc
		result  string
		wantErr string
	}{
		{"json", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "[1, 2]\n") }, `[1, 2]`, ""},
		{"empty", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }, `null`, ""},
		{"text", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "queued ok") }, `"queued ok"`, ""},
		{"500", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(500)
			io.WriteString(w, "db down\x1b[2J"+strings.Repeat("y", 300))
		}, "", `webhook answered 500 Internal Server Error: db down\x1b[2J` + strings.Repeat("y", 200-len("db down\x1b[2J")) + "…"},
		{"503 empty", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }, "", "webhook answered 503 Service Unavailable"},
		{"500 bidi override", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(500)
			io.WriteString(w, "abc\u202edef")
		}, "", `webhook answered 500 Internal Server Error: abc\u202edef`},
		{"302 not followed", redirectOnce(), "", "webhook answered 302 Found: redirects are not followed (Location /elsewhere)"},
		{"too large", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, big) }, "", "webhook answered 200 OK with a body over 1048576 bytes (1 MiB): too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, seen := receiver(t, tt.answer)
			// Bounded: a delivery that followed redirects for ever would
			// hang the test (rvhook38 M4).
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := handler(t, webhook.New(webhook.Options{}), url).RunJob(ctx, job(`{}`))
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
			} else if err != nil || string(res) != tt.result {
				t.Fatalf("result %s, %v; want %s", res, err, tt.result)
			}
			if n := len(seen); n != 1 {
				t.Errorf("%d requests, want 1 (a redirect is not followed)", n)
			}
		})
	}
}

// redirectOnce answers the first request with a redirect, and any later one
// (a redirect followed) with 200: following it would succeed, and fail the
// test at once rather than loop.
func redirectOnce() http.HandlerFunc {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 1 {
			io.WriteString(w, "followed")
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}
}

// rawReceiver starts a TCP receiver that reads each request and writes
// answer as is, for answers no http.Handler can give; it returns its URL.
func rawReceiver(t *testing.T, answer string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(conn, answer)
			}()
		}
	}()
	return "http://" + l.Addr().String() + "/hook?key=k3y"
}

// TestDeliveryHostileAnswers: a receiver's status line or header, however
// long or full of control bytes, gives an error of a few hundred bytes,
// escaped, and no header failure is called unreachable (rvhook38 H2).
func TestDeliveryHostileAnswers(t *testing.T) {
	esc := "\x1b[31mRED\x1b[0m"
	tests := []struct {
		name, answer, want string
	}{
		{"status of 500 KB", "HTTP/1.1 500 " + esc + strings.Repeat("A", 500<<10) + "\r\nContent-Length: 0\r\n\r\n", ""},
		{"status with escapes", "HTTP/1.1 500 " + esc + strings.Repeat("A", 1000) + "\r\nContent-Length: 2\r\n\r\nno",
			`webhook answered 500 \x1b[31mRED\x1b[0mAAA`},
		{"malformed header line of 2 MB", "HTTP/1.1 200 OK\r\n" + esc + strings.Repeat("B", 2<<20) + "\r\nContent-Length: 0\r\n\r\n", ""},
		{"header of 2 MB", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("B", 2<<20) + "\r\nContent-Length: 0\r\n\r\n", ""},
		{"malformed header line", "HTTP/1.1 200 OK\r\n" + esc + strings.Repeat("C", 8<<10) + "\r\nContent-Length: 0\r\n\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c := webhook.New(webhook.Options{})
			defer c.CloseIdleConnections()
			_, err := handler(t, c, rawReceiver(t, tt.answer)).RunJob(ctx, job(`{}`))
			if err == nil {
				t.Fatal("delivery succeeded")
			}
			msg := err.Error()
			if len(msg) > 600 {
				t.Errorf("error of %d bytes, want at most 600: %.300q…", len(msg), msg)
			}
			if i := strings.IndexFunc(msg, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
				t.Errorf("error holds a control byte at %d: %.300q", i, msg)
			}
			if strings.Contains(msg, "unreachable") || strings.Contains(msg, "k3y") || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %.300q; want no 'unreachable', no query, no timeout", msg)
			}
			if !strings.HasPrefix(msg, tt.want) {
				t.Errorf("error %.300q, want it to start %q", msg, tt.want)
			}
		})
	}
}

// TestDeliveryReusesConnections: the connection of a delivery is reused by
// the next, after a failed answer with a body (drained, not just closed)
// and after a 2xx (rvhook38 L5).
func TestDeliveryReusesConnections(t *testing.T) {
	var n atomic.Int32
	url, _ := receiver(t, func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1)%2 == 1 {
			w.WriteHeader(500)
			io.WriteString(w, strings.Repeat("e", 16<<10)) // past what its excerpt reads
			return
		}
		io.WriteString(w, `{"ok":true}`)
	})
	c := webhook.New(webhook.Options{})
	defer c.CloseIdleConnections()
	h := handler(t, c, url)
	for i, wantErr := range []bool{true, false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var reused bool
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused }})
		_, err := h.RunJob(ctx, job(`{}`))
		cancel()
		if (err != nil) != wantErr {
			t.Fatalf("delivery %d: error %v, want error %v", i+1, err, wantErr)
		}
		if i > 0 && !reused {
			t.Errorf("delivery %d made a new connection; want the previous one reused", i+1)
		}
	}
}

// TestDeliveryFailedAnswerReadBounded: of a failed answer only its excerpt
// and a bounded drain are read (rvhook38 NIT 8): after a 500 with a body of
// 256 KiB the connection is dropped, not read to its end for reuse.
func TestDeliveryFailedAnswerReadBounded(t *testing.T) {
	var n atomic.Int32
	url, _ := receiver(t, func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(500)
			io.WriteString(w, strings.Repeat("e", 256<<10))
			return
		}
		io.WriteString(w, `{"ok":true}`)
	})
	c := webhook.New(webhook.Options{})
	defer c.CloseIdleConnections()
	h := handler(t, c, url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := h.RunJob(ctx, job(`{}`)); err == nil || len(err.Error()) > 300 {
		t.Fatalf("error %.300v; want a failure of at most 300 bytes", err)
	}
	var reused bool
	tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused }})
	if _, err := h.RunJob(tctx, job(`{}`)); err != nil {
		t.Fatal(err)
	}
	if reused {
		t.Error("the connection of a 256 KiB failed answer was reused: its body was read to the end")
	}
}

// TestDeliveryCancelled: the job's context ending mid-request ends the
// delivery at once, with its cause.
func TestDeliveryCancelled(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	url, seen := receiver(t, func(http.ResponseWriter, *http.Request) { <-release })
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := handler(t, webhook.New(webhook.Options{}), url).RunJob(ctx, job(`{}`))
		done <- err
	}()
	<-seen
	cancel(queue.ErrTimedOut)
	select {
	case err := <-done:
		if !errors.Is(err, queue.ErrTimedOut) {
			t.Errorf("error %v, want it to carry the context's cause", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("delivery not ended by its context")
	}
}

// TestDeliveryUnreachable: a refused connection names the host, never the
// path or query.
func TestDeliveryUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = handler(t, webhook.New(webhook.Options{}), "http://"+addr+"/hook?key=k3y").RunJob(context.Background(), job(`{}`))
	if err == nil || !strings.Contains(err.Error(), "webhook "+addr+" unreachable") || !strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "k3y") {
		t.Errorf("error %v; want one naming %s, refused, without the query", err, addr)
	}
}

// TestHandlerRefusesURLs: only absolute http(s) URLs without user info.
func TestHandlerRefusesURLs(t *testing.T) {
	c := webhook.New(webhook.Options{})
	for _, u := range []string{"/relative", "ftp://h/x", "http://u:pw@h/x", "http://"} {
		if _, err := c.Handler(u); err == nil {
			t.Errorf("Handler(%q) accepted", u)
		}
	}
}

// TestDeliveryRetryAfter: a 429 or 503 answer's Retry-After, in seconds
// or as an HTTP date, becomes the least wait before the job's retry
// (queue.RetryAfterError, said in last_error); another status's, a
// malformed or past one, and none leave the backoff alone.
func TestDeliveryRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)
	c := webhook.New(webhook.Options{Now: func() time.Time { return now }})
	for _, tt := range []struct {
		name   string
		code   int
		header string
		want   time.Duration // 0: no RetryAfterError
	}{
		{"503 seconds", 503, "120", 2 * time.Minute},
		{"429 seconds", 429, " 7 ", 7 * time.Second},
		{"429 date", 429, now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"503 huge", 503, "99999999999999999999", queue.MaxBackoffCap},
		{"503 zero", 503, "0", 0},
		{"503 past date", 503, now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"503 malformed", 503, "soon", 0},
		{"503 negative", 503, "-5", 0},
		{"429 none", 429, "", 0},
		{"500 seconds", 500, "120", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url, _ := receiver(t, func(w http.ResponseWriter, _ *http.Request) {
				if tt.header != "" {
					w.Header().Set("Retry-After", tt.header)
				}
				w.WriteHeader(tt.code)
				_, _ = w.Write([]byte("busy"))
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := handler(t, c, url).RunJob(ctx, job(`{}`))
			if err == nil {
				t.Fatal("a failed answer succeeded")
			}
			var ra *queue.RetryAfterError
			if !errors.As(err, &ra) {
				if tt.want != 0 {
					t.Fatalf("error %q asks for no wait, want %v", err, tt.want)
				}
				if strings.Contains(err.Error(), "Retry-After") {
					t.Errorf("error %q names a Retry-After it does not apply", err)
				}
				return
			}
			if tt.want == 0 || ra.After != tt.want {
				t.Fatalf("error %q asks for %v, want %v", err, ra.After, tt.want)
			}
			if want := "Retry-After " + tt.want.String() + ": busy"; !strings.HasSuffix(err.Error(), want) {
				t.Errorf("error %q, want it to end with %q", err, want)
			}
		})
	}
}

// TestDeliveryNoRetry: a failed answer with Refrakt-No-Retry "true" or
// "1" (any case, blanks around) fails not to be retried (queue.ErrNoRetry),
// over a Retry-After it carries, which its error then does not name; so
// does a 3xx (a redirect, not followed) with it. Only its first value
// counts. Any other value, and the header on a 2xx, change nothing.
func TestDeliveryNoRetry(t *testing.T) {
	c := webhook.New(webhook.Options{})
	const redirected = "webhook answered 302 Found: redirects are not followed (Location /elsewhere); point JOB_WEBHOOKS at the final URL"
	for _, tt := range []struct {
		name       string
		values     []string // the answer's HeaderNoRetry values, in order
		code       int
		retryAfter string
		wantErr    string // "": success
		final      bool
	}{
		{"422 true", []string{"true"}, 422, "", "webhook answered 422 Unprocessable Entity: bad address", true},
		{"400 TRUE spaced", []string{" TRUE "}, 400, "", "webhook answered 400 Bad Request: bad address", true},
		{"410 one", []string{"1"}, 410, "", "webhook answered 410 Gone: bad address", true},
		{"503 Retry-After loses", []string{"true"}, 503, "3600", "webhook answered 503 Service Unavailable: bad address", true},
		{"500 without", nil, 500, "", "webhook answered 500 Internal Server Error: bad address", false},
		{"422 false", []string{"false"}, 422, "", "webhook answered 422 Unprocessable Entity: bad address", false},
		{"422 malformed", []string{"yes"}, 422, "", "webhook answered 422 Unprocessable Entity: bad address", false},
		{"200 with it", []string{"true"}, 200, "", "", false},
		{"302 true", []string{"true"}, 302, "", redirected, true},
		{"302 without", nil, 302, "", redirected, false},
		// Only the first value counts, whatever follows it.
		{"422 true then false", []string{"true", "false"}, 422, "", "webhook answered 422 Unprocessable Entity: bad address", true},
		{"422 false then true", []string{"false", "true"}, 422, "", "webhook answered 422 Unprocessable Entity: bad address", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url, _ := receiver(t, func(w http.ResponseWriter, _ *http.Request) {
				for _, v := range tt.values {
					w.Header().Add(webhook.HeaderNoRetry, v)
				}
				if tt.code/100 == 3 {
					w.Header().Set("Location", "/elsewhere")
				}
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.code)
				_, _ = io.WriteString(w, "bad address")
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			res, err := handler(t, c, url).RunJob(ctx, job(`{}`))
			if tt.wantErr == "" {
				if err != nil || string(res) != `"bad address"` {
					t.Fatalf("result %s, %v; want success", res, err)
				}
				return
			}
			if err == nil {
				t.Fatal("a failed answer succeeded")
			}
			var ra *queue.RetryAfterError
			if d := cmp.Diff([3]any{tt.wantErr, tt.final, false}, [3]any{err.Error(), errors.Is(err, queue.ErrNoRetry), errors.As(err, &ra)}); d != "" {
				t.Errorf("error, not to retry, asks a wait (-want +got):\n%s", d)
			}
		})
	}
}
