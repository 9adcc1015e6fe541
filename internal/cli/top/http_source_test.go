package top_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/cli"
	"github.com/refrakt/refrakt/internal/cli/top"
	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/snapshot"
	"github.com/refrakt/refrakt/internal/daemontest"
)

// request is what the fake daemon saw.
type request struct {
	Method, Path, Auth, Body string
}

// TestHTTPSource checks the requests the source sends through the CLI's
// API client, and that the daemon's error codes reach `top`.
func TestHTTPSource(t *testing.T) {
	fixture, err := os.ReadFile("testdata/snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		status   int
		body     string
		call     func(*top.HTTPSource) error
		wantReq  request
		wantCode string
	}{
		{
			name: "fetch sends the bearer token", status: 200, body: string(fixture),
			call: func(s *top.HTTPSource) error {
				snap, err := s.Fetch(context.Background())
				if err == nil && snap.Queues[0].Pending != 1423 {
					t.Errorf("pending = %d, want 1423", snap.Queues[0].Pending)
				}
				return err
			},
			wantReq: request{"GET", "/api/obs/snapshot", "Bearer tok", ""},
		},
		{
			name: "role asks whoami", status: 200, body: `{"role":"operator"}`,
			call: func(s *top.HTTPSource) error {
				role, err := s.Role(context.Background())
				if err == nil && role != "operator" {
					t.Errorf("role = %q, want operator", role)
				}
				return err
			},
			wantReq: request{"GET", "/api/obs/whoami", "Bearer tok", ""},
		},
		{
			name: "reset posts the key", status: 200, body: `{}`,
			call:    func(s *top.HTTPSource) error { return s.ResetBucket(context.Background(), "run:ip:203.0.113.7") },
			wantReq: request{"POST", "/api/dev/rate-limits/reset", "Bearer tok", `{"key":"run:ip:203.0.113.7"}`},
		},
		{
			name: "requeue posts to the job", status: 200, body: `{}`,
			call:    func(s *top.HTTPSource) error { return s.RequeueJob(context.Background(), "9f2c") },
			wantReq: request{"POST", "/api/dev/jobs/9f2c/requeue", "Bearer tok", ""},
		},
		{
			name: "an operator token is forbidden to act", status: 403,
			body:     `{"error":{"code":"forbidden","message":"needs the developer role"}}`,
			call:     func(s *top.HTTPSource) error { return s.RequeueJob(context.Background(), "9f2c") },
			wantReq:  request{"POST", "/api/dev/jobs/9f2c/requeue", "Bearer tok", ""},
			wantCode: core.CodeForbidden,
		},
		{
			name: "a 401 without an error body is still unauthorized", status: 401, body: "nope",
			call:     func(s *top.HTTPSource) error { _, err := s.Fetch(context.Background()); return err },
			wantReq:  request{"GET", "/api/obs/snapshot", "Bearer tok", ""},
			wantCode: core.CodeUnauthorized,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got request
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				got = request{r.Method, r.URL.Path, r.Header.Get("Authorization"), string(bytes.TrimSpace(body))}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			err := tt.call(top.NewHTTPSource(srv.URL, cli.NewAPIClient(srv.URL, "tok")))
			if diff := cmp.Diff(tt.wantReq, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			gotCode := ""
			if err != nil {
				gotCode = core.ErrorCode(err)
			}
			if diff := cmp.Diff(tt.wantCode, gotCode); diff != "" {
				t.Errorf("error code (-want +got):\n%s (error: %v)", diff, err)
			}
		})
	}
}

// The snapshot fixture must stay a faithful instance of the contract:
// every field it sets must exist in the Go types.
func TestFixtureMatchesContract(t *testing.T) {
	data, err := os.ReadFile("testdata/snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s snapshot.Snapshot
	if err := dec.Decode(&s); err != nil {
		t.Fatal(err)
	}
}

// TestAuthenticationProblemAsTheCLISaysIt: a daemon that refuses the token
// makes `top` say what `refrakt jobs list` says in its one line, the CLI's
// advice included (how to give a token; which token file was rejected), and
// on an 80-column screen the advice wraps rather than being cut.
func TestAuthenticationProblemAsTheCLISaysIt(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"code":"unauthorized","message":"a valid bearer token is required"}}`)
	}))
	defer srv.Close()
	state := t.TempDir()
	tokenFile := filepath.Join(state, "refrakt", "token")
	if err := os.MkdirAll(filepath.Dir(tokenFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte("stale\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		env    map[string]string // of `refrakt jobs list`
		client *cli.APIClient    // what `refrakt top` resolves from env
		want   string            // the CLI's line, after "refrakt: "
	}{
		{"no token", map[string]string{"XDG_STATE_HOME": t.TempDir()}, cli.NewAPIClient(srv.URL, ""),
			"a valid bearer token is required (give a token with REFRAKT_TOKEN, or --token, which ps shows)"},
		{"a token given", map[string]string{"REFRAKT_TOKEN": "wrong"}, cli.NewAPIClient(srv.URL, "wrong"),
			"a valid bearer token is required (the daemon rejected the token given with REFRAKT_TOKEN or --token)"},
		{"the token file's", map[string]string{"XDG_STATE_HOME": state},
			&cli.APIClient{Base: srv.URL, Token: "stale", TokenFile: tokenFile, HTTP: http.DefaultClient},
			"a valid bearer token is required (the token was read from the token file " + tokenFile +
				" and the daemon rejected it: give another with REFRAKT_TOKEN or --token)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"REFRAKT_SERVER": srv.URL}
			for k, v := range tt.env {
				env[k] = v
			}
			var stderr bytes.Buffer
			cli.Run(context.Background(), []string{"jobs", "list"}, func(k string) string { return env[k] },
				strings.NewReader(""), io.Discard, &stderr)
			if diff := cmp.Diff("refrakt: "+tt.want+"\n", stderr.String()); diff != "" {
				t.Fatalf("jobs list stderr (-want +got):\n%s", diff)
			}

			for _, width := range []int{300, 80} {
				var m tea.Model = top.New(context.Background(), top.NewHTTPSource(srv.URL, tt.client), top.Options{NoColor: true})
				m, _ = m.Update(tea.WindowSizeMsg{Width: width, Height: 24})
				m, _ = m.Update(m.Init()())
				lines := strings.Split(ansi.Strip(m.(top.Model).Screen()), "\n")
				var status []string // the header's status, wrapped: up to the first empty line or pane
				for _, l := range lines[1:] {
					if strings.TrimSpace(l) == "" || strings.Contains(l, "Queues") {
						break
					}
					status = append(status, strings.TrimSpace(l))
				}
				got := strings.Join(status, " ")
				if want := "authentication failed: " + tt.want + " · retry in 1.0s"; got != want {
					t.Errorf("width %d: top's status %q, want %q", width, got, want)
				}
			}
		})
	}
}

// TestDaemonUpBackendDown: top tells a daemon it cannot reach from a
// daemon that answers but whose backend is down or not connected yet,
// through the CLI's API client, against a real daemon too.
func TestDaemonUpBackendDown(t *testing.T) {
	closed := daemontest.ClosedAddr(t)
	backendLost := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":{"code":"unavailable","message":"the job queue is unavailable"}}`)
	}))
	defer backendLost.Close()
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":{"code":"unavailable","message":"too many requests in flight (64); retry shortly"}}`)
	}))
	defer busy.Close()
	d := daemontest.Start(t, []string{"QUEUE_URL=redis://" + closed + "/0"}) // up; its Redis never answers
	d.WaitHTTP("/readyz", http.StatusServiceUnavailable, 15*time.Second)
	tests := []struct {
		name       string
		url, token string
		want       string // the start of the status line
	}{
		{"no daemon", "http://" + closed, "x", "disconnected: connection refused · retry in"},
		{"a daemon whose backend is lost", backendLost.URL, "x", "daemon up, backend unavailable: the job queue is unavailable · retry in"},
		{"a daemon still connecting its backend", d.URL, d.Token, "daemon up, backend unavailable: backend not "},
		// Its in-flight cap: up and busy, nothing behind it down.
		{"a daemon at its in-flight cap", busy.URL, "x", "daemon busy: too many requests in flight (64)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m tea.Model = top.New(context.Background(), top.NewHTTPSource(tt.url, cli.NewAPIClient(tt.url, tt.token)), top.Options{NoColor: true})
			m, _ = m.Update(tea.WindowSizeMsg{Width: 200, Height: 24})
			m, _ = m.Update(m.Init()())
			if status := strings.Split(ansi.Strip(m.(top.Model).Screen()), "\n")[1]; !strings.HasPrefix(status, tt.want) {
				t.Errorf("status %q, want it to start %q", status, tt.want)
			}
		})
	}
}

// TestOperatorTokenRefusedAtOnce: against a real daemon, top learns the
// token's role with its first data, so x with an operator token says it
// needs a developer token at once, while a developer's token is asked to
// confirm.
func TestOperatorTokenRefusedAtOnce(t *testing.T) {
	const operator = "operator-token-for-tests-0123456789"
	d := daemontest.Start(t, []string{"REFRAKT_OPERATOR_TOKEN=" + operator}, "--workers", "0")
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	for range 5 { // rl-test allows 3 a minute: a bucket with strikes to select
		req, _ := http.NewRequest(http.MethodGet, d.URL+"/api/dev/rl-test", nil)
		req.Header.Set("Authorization", "Bearer "+d.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	tests := []struct {
		name, token, wantFooter string
	}{
		{"an operator's token", operator, "reset needs a developer token"},
		{"a developer's token", d.Token, "reset bucket rl-test:ip:127.0.0.1? [y/N]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m tea.Model = top.New(context.Background(), top.NewHTTPSource(d.URL, cli.NewAPIClient(d.URL, tt.token)),
				top.Options{Interval: top.MinInterval, NoColor: true})
			m, _ = m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
			m, cmd := m.Update(m.Init()())
			for _, msg := range runAll(cmd) { // the next tick, and the role's answer
				m, _ = m.Update(msg)
			}
			for _, k := range []tea.KeyPressMsg{{Code: tea.KeyTab}, {Code: tea.KeyTab}, {Code: 'x', Text: "x"}} {
				m, _ = m.Update(k)
			}
			lines := strings.Split(ansi.Strip(m.(top.Model).Screen()), "\n")
			if footer := lines[len(lines)-1]; footer != tt.wantFooter {
				t.Errorf("footer %q, want %q; screen:\n%s", footer, tt.wantFooter, strings.Join(lines, "\n"))
			}
		})
	}
}

// runAll runs cmd, and each command of a batch at once, and returns the
// messages they yield.
func runAll(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	msg := cmd()
	batch, ok := msg.(tea.BatchMsg)
	if !ok {
		return []tea.Msg{msg}
	}
	results := make([][]tea.Msg, len(batch))
	var wg sync.WaitGroup
	for i, c := range batch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runAll(c)
		}()
	}
	wg.Wait()
	var msgs []tea.Msg
	for _, r := range results {
		msgs = append(msgs, r...)
	}
	return msgs
}

// TestRedirectShownNotFollowed: a server that answers with a redirect is
// not followed by `top` either, whatever http.Client its API client has, so
// the token goes nowhere else; the header says where it points and which
// --server to give, and calls it no lost connection.
func TestRedirectShownNotFollowed(t *testing.T) {
	var mu sync.Mutex
	reached := 0
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		mu.Lock()
		reached++
		mu.Unlock()
	}))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusPermanentRedirect)
	}))
	defer srv.Close()

	client := &cli.APIClient{Base: srv.URL, Token: "tok", HTTP: http.DefaultClient}
	var m tea.Model = top.New(context.Background(), top.NewHTTPSource(srv.URL, client), top.Options{NoColor: true})
	m, _ = m.Update(tea.WindowSizeMsg{Width: 300, Height: 24})
	m, _ = m.Update(m.Init()())
	screen := ansi.Strip(m.(top.Model).Screen())
	want := "redirected to " + elsewhere.URL + "/api/obs/snapshot, not followed (if the daemon is there, give --server " + elsewhere.URL + ")"
	if !strings.Contains(screen, want) || strings.Contains(screen, "disconnected") {
		t.Errorf("screen:\n%s\nwant %q", screen, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if reached != 0 {
		t.Errorf("the redirect was followed: %d requests reached its target", reached)
	}
}

// TestAnswersThatAreNotTheDaemons: through the CLI's API client, a server
// at --server that answers something else than a snapshot (an empty body
// or {} with 200, a proxy's HTML page) is not taken for a daemon with no
// queues that is not ready, and a server that answers with an error page
// is not called disconnected; a bare 503 (a load balancer with no daemon
// behind it) is not called the daemon's.
func TestAnswersThatAreNotTheDaemons(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string // the start of the status line
	}{
		{"200, empty", 200, "", "unexpected answer: not a refrakt snapshot"},
		{"200, {}", 200, "{}", "unexpected answer: not a refrakt snapshot"},
		{"200, HTML", 200, "<html>sign in</html>", "unexpected answer: decode answer of GET /api/obs/snapshot: invalid character '<'"},
		{"a bare 500", 500, "oops", "unexpected answer: GET /api/obs/snapshot: 500 Internal Server Error"},
		{"a bare 503", 503, "no healthy upstream", "server unavailable (not the daemon's answer): GET /api/obs/snapshot: 503 Service Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			var m tea.Model = top.New(context.Background(), top.NewHTTPSource(srv.URL, cli.NewAPIClient(srv.URL, "x")), top.Options{NoColor: true})
			m, _ = m.Update(tea.WindowSizeMsg{Width: 200, Height: 24})
			m, _ = m.Update(m.Init()())
			screen := ansi.Strip(m.(top.Model).Screen())
			if status := strings.Split(screen, "\n")[1]; !strings.HasPrefix(status, tt.want) {
				t.Errorf("status %q, want it to start %q", status, tt.want)
			}
			if strings.Contains(screen, "NOT READY") || strings.Contains(screen, "Queues (0)") {
				t.Errorf("taken for a snapshot:\n%s", screen)
			}
		})
	}
}

// TestBanBucketOnADaemon: against a real daemon, B on the buckets pane asks
// "ban KEY for 1h?", y bans the key through the daemon's route, the footer
// says so, and the daemon then refuses that client as banned for an hour.
func TestBanBucketOnADaemon(t *testing.T) {
	d := daemontest.Start(t, nil, "--workers", "0")
	d.WaitHTTP("/readyz", http.StatusOK, 15*time.Second)
	probe := func() *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, d.URL+"/api/dev/rl-test", nil)
		req.Header.Set("Authorization", "Bearer "+d.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := probe(); resp.StatusCode != http.StatusOK { // a bucket to select
		t.Fatalf("before the ban: %d", resp.StatusCode)
	}
	var m tea.Model = top.New(context.Background(), top.NewHTTPSource(d.URL, cli.NewAPIClient(d.URL, d.Token)),
		top.Options{Interval: top.MinInterval, NoColor: true})
	m, _ = m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	m, cmd := m.Update(m.Init()())
	for _, msg := range runAll(cmd) {
		m, _ = m.Update(msg)
	}
	footer := func() string {
		lines := strings.Split(ansi.Strip(m.(top.Model).Screen()), "\n")
		return lines[len(lines)-1]
	}
	for _, k := range []tea.KeyPressMsg{{Code: tea.KeyTab}, {Code: tea.KeyTab}, {Code: 'B', Text: "B"}} {
		m, _ = m.Update(k)
	}
	if got, want := footer(), "ban rl-test:ip:127.0.0.1 for 1h? [y/N]"; got != want {
		t.Fatalf("footer %q, want %q", got, want)
	}
	m, cmd = m.Update(tea.KeyPressMsg{Code: 'y', Text: "y"})
	for _, msg := range runAll(cmd) { // the ban
		m, _ = m.Update(msg)
	}
	if got, want := footer(), "bucket rl-test:ip:127.0.0.1 banned for 1h"; got != want {
		t.Errorf("footer %q, want %q", got, want)
	}
	resp := probe()
	if retry, _ := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != http.StatusTooManyRequests || retry < 3590 || retry > 3600 {
		t.Errorf("the banned client: %d, Retry-After %q; want 429 and an hour", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
