package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/redistest"
)

const (
	devToken = "developer-token-0123456789"
	opToken  = "operator-token-0123456789"
)

// testConfig is the default config with both tokens set and no workers,
// changed by mutate.
func testConfig(mutate ...func(*config.Config)) config.Config {
	cfg := config.Default()
	cfg.DeveloperToken, cfg.OperatorToken = devToken, opToken
	cfg.WorkerConcurrency = 0
	for _, m := range mutate {
		m(&cfg)
	}
	return cfg
}

// newTestServer is a server of testConfig on the memory backend.
func newTestServer(t *testing.T, mutate ...func(*config.Config)) *Server {
	t.Helper()
	s, err := NewServer(Deps{Config: testConfig(mutate...)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newRedisServer is a server of testConfig on r: the client it returns is
// closed at cleanup, and the backend's key prefix is the config's.
func newRedisServer(t *testing.T, r *redistest.Server, mutate ...func(*config.Config)) (*Server, redis.UniversalClient) {
	t.Helper()
	return newURLServer(t, r.URL(), mutate...)
}

// newURLServer is newRedisServer on the Redis (or Redis Cluster) at url.
func newURLServer(t *testing.T, url string, mutate ...func(*config.Config)) (*Server, redis.UniversalClient) {
	t.Helper()
	client, kind, err := OpenRedis(context.Background(), url, "auto")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	cfg := testConfig(mutate...)
	s, err := NewServer(Deps{Config: cfg, Backend: &Backend{Kind: kind, Redis: client, Prefix: cfg.Prefix}})
	if err != nil {
		t.Fatal(err)
	}
	return s, client
}

// do sends one request through the server's whole middleware chain.
func do(t *testing.T, h http.Handler, method, path, token, body string) (*http.Response, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return resp, out
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// errMessage is the message of an error body, "" when there is none.
func errMessage(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

func TestAuth(t *testing.T) {
	s := newTestServer(t)
	tests := []struct {
		name, path, token string
		status            int
		role              string
	}{
		{"dev without token", "/api/dev/whoami", "", 401, ""},
		{"dev wrong token", "/api/dev/whoami", "nope", 401, ""},
		{"dev with operator", "/api/dev/whoami", opToken, 403, ""},
		{"dev with developer", "/api/dev/whoami", devToken, 200, "developer"},
		{"obs without token", "/api/obs/whoami", "", 401, ""},
		{"obs with operator", "/api/obs/whoami", opToken, 200, "operator"},
		{"obs with developer", "/api/obs/whoami", devToken, 200, "developer"},
		{"obs with token prefix", "/api/obs/whoami", opToken[:10], 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, s, "GET", tt.path, tt.token, "")
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tt.status, body)
			}
			if tt.status == 200 {
				if diff := cmp.Diff(tt.role, body["role"]); diff != "" {
					t.Errorf("role (-want +got)\n%s", diff)
				}
			} else if errCode(body) == "" {
				t.Errorf("no JSON error envelope: %v", body)
			}
		})
	}
}

func TestNoOperatorTokenMeansNoOperator(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.OperatorToken = "" })
	// An empty bearer must never match the unset operator token.
	req := httptest.NewRequest("GET", "/api/obs/whoami", nil)
	req.Header.Set("Authorization", "Bearer ")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Fatalf("empty bearer got %d, want 401", rec.Code)
	}
}

// TestTokenFileMadeByTwoAtOnce: daemons starting at the same time on one
// state directory all serve the token the file holds. They wrote the same
// temporary file and renamed it in turn: one served a token no file held
// (1 in 20 starts in a review), or failed ("rename … no such file").
func TestTokenFileMadeByTwoAtOnce(t *testing.T) {
	tokenFileRaces(t, nil)
}

// TestTokenFileReplacedByTwoAtOnce (a code review's test; 21 of 50 rounds
// failed before the lock): the same race when a file is found but unusable
// (empty, too short, or readable by others: `touch token`, a copy made with
// the wrong mode, a file cut short by a full disk). Every daemon renamed
// its own token over it, the last rename won, and the others served a
// token no file held.
func TestTokenFileReplacedByTwoAtOnce(t *testing.T) {
	tokenFileRaces(t, []byte("short\n")) // unusable: < 16 characters
}

// tokenFileRaces makes 4 daemons' ensureTokenFile race on a fresh state
// directory (holding a token file of content found, unless nil), 50 times:
// each must return the token the file then holds, and leave no temporary
// file.
func tokenFileRaces(t *testing.T, found []byte) {
	for round := range 50 {
		path := filepath.Join(t.TempDir(), "refrakt", "token")
		if found != nil {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, found, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		toks := make([]string, 4)
		errs := make([]error, len(toks))
		var wg sync.WaitGroup
		for i := range toks {
			wg.Go(func() { toks[i], _, errs[i] = ensureTokenFile(path, quiet) })
		}
		wg.Wait()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, tok := range toks {
			if errs[i] != nil || tok != strings.TrimSpace(string(b)) {
				t.Fatalf("round %d, daemon %d: %q, %v; the file holds %q", round, i, tok, errs[i], b)
			}
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*.tmp")); len(left) > 0 {
			t.Fatalf("round %d: temporary files left: %v", round, left)
		}
	}
}

// TestTokenDirectoryUnusableHints: a state directory that cannot be made
// (a HOME not writable, as for service users) says how to do without it;
// the no-HOME case did, this one did not.
func TestTokenDirectoryUnusableHints(t *testing.T) {
	file := filepath.Join(t.TempDir(), "home")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := ensureTokenFile(filepath.Join(file, ".local", "state", "refrakt", "token"), quiet)
	if err == nil || !strings.Contains(err.Error(), "set REFRAKT_DEVELOPER_TOKEN, or XDG_STATE_HOME") {
		t.Fatalf("err %v, want the hint", err)
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	path, err := TokenPath(func(k string) string { return map[string]string{"XDG_STATE_HOME": dir}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "refrakt", "token"); path != want {
		t.Fatalf("path %s, want %s", path, want)
	}
	tok, created, err := ensureTokenFile(path, quiet)
	if err != nil || !created || len(tok) < 32 {
		t.Fatalf("ensureTokenFile = %q, %v, %v", tok, created, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %o, want 600", st.Mode().Perm())
	}
	again, created, err := ensureTokenFile(path, quiet)
	if err != nil || created || again != tok {
		t.Fatalf("second call = %q, created=%v, %v; want the same token kept", again, created, err)
	}
	// A token file others can read is replaced.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	fresh, created, err := ensureTokenFile(path, quiet)
	if err != nil || !created || fresh == tok {
		t.Fatalf("world-readable file kept: created=%v err=%v", created, err)
	}
	home, _ := TokenPath(func(k string) string { return map[string]string{"HOME": "/home/u"}[k] })
	if home != "/home/u/.local/state/refrakt/token" {
		t.Fatalf("fallback path %s", home)
	}
}

type echoBody struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// echoRoute adds POST /test/echo, which decodes an echoBody with
// decodeJSON and answers it.
func echoRoute(s *Server) {
	s.mux.Handle("POST /test/echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b echoBody
		if err := decodeJSON(w, r, &b); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		writeJSON(w, 200, b)
	}))
}

func TestStrictJSONAndBodyLimit(t *testing.T) {
	s := newTestServer(t)
	echoRoute(s)
	big := `{"name":"` + strings.Repeat("x", MaxBody+10) + `"}`
	tests := []struct {
		name, body string
		status     int
		msg        string
	}{
		{"good", `{"name":"a","count":2}`, 200, ""},
		{"unknown field", `{"name":"a","extra":1}`, 400, `unknown field "extra"`},
		{"wrong type", `{"count":"two"}`, 400, `field "count" must be a whole number`},
		{"not an object", `[1,2]`, 400, "must be a JSON object"},
		{"syntax", `{"name":`, 400, "truncated"},
		{"garbage", `{nope}`, 400, "not valid JSON"},
		{"empty", ``, 400, "empty"},
		{"two values", `{} {}`, 400, "one JSON value"},
		{"too large", big, 413, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, s, "POST", "/test/echo", "", tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tt.status, body)
			}
			if tt.msg != "" {
				if msg := errMessage(body); !strings.Contains(msg, tt.msg) {
					t.Errorf("message %q, want it to contain %q", msg, tt.msg)
				}
			}
		})
	}
	// A chunked body (no Content-Length) over the limit is refused too.
	req := httptest.NewRequest("POST", "/test/echo", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != 413 {
		t.Fatalf("chunked oversize body: status %d, want 413", rec.Code)
	}
}

func TestPanicBecomes500(t *testing.T) {
	s := newTestServer(t)
	s.mux.Handle("GET /test/panic", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("boom: secret internals")
	}))
	resp, body := do(t, s, "GET", "/test/panic", "", "")
	if resp.StatusCode != 500 || errCode(body) != "internal" {
		t.Fatalf("got %d %v, want 500 internal", resp.StatusCode, body)
	}
	if strings.Contains(body["error"].(map[string]any)["message"].(string), "secret") {
		t.Fatal("panic value leaked to the client")
	}
	// The server still serves after a panic.
	if resp, _ := do(t, s, "GET", "/healthz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("healthz after panic: %d", resp.StatusCode)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	s := newTestServer(t)
	resp, body := do(t, s, "GET", "/nope", "", "")
	if resp.StatusCode != 404 || errCode(body) != "not_found" {
		t.Fatalf("unknown path: %d %v", resp.StatusCode, body)
	}
	resp, body = do(t, s, "DELETE", "/healthz", "", "")
	if resp.StatusCode != 405 || resp.Header.Get("Allow") == "" || errCode(body) != "method_not_allowed" {
		t.Fatalf("wrong method: %d allow=%q %v", resp.StatusCode, resp.Header.Get("Allow"), body)
	}
}

func TestReadyzFollowsRedis(t *testing.T) {
	r := redistest.Start(t)
	ctx := context.Background()
	client, kind, err := OpenRedis(ctx, r.URL(), "auto")
	if err != nil {
		t.Fatal(err)
	}
	if kind != BackendRedis {
		t.Fatalf("kind %q, want redis", kind)
	}
	cfg := config.Default()
	cfg.DeveloperToken = devToken
	cfg.WorkerConcurrency = 0
	s, err := NewServer(Deps{Config: cfg, Backend: &Backend{Kind: kind, Redis: client}})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	check := func(want int) {
		t.Helper()
		resp, body := do(t, s, "GET", "/readyz", "", "")
		if resp.StatusCode != want {
			t.Fatalf("readyz %d, want %d: %v", resp.StatusCode, want, body)
		}
		if resp2, _ := do(t, s, "GET", "/healthz", "", ""); resp2.StatusCode != 200 {
			t.Fatalf("healthz %d while readyz %d", resp2.StatusCode, resp.StatusCode)
		}
	}
	check(200)
	r.Stop()
	check(503)
	r.Restart()
	check(200)
}

func TestInFlightCap(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.MaxInFlight = 2 })
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	s.mux.Handle("GET /test/hold", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		writeJSON(w, 200, map[string]string{"ok": "yes"})
	}))
	done := make(chan int, 2)
	for i := 0; i < 2; i++ {
		go func() {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest("GET", "/test/hold", nil))
			done <- rec.Code
		}()
	}
	<-entered
	<-entered
	resp, body := do(t, s, "GET", "/test/hold", "", "")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || errCode(body) != "unavailable" {
		t.Fatalf("third concurrent request: %d %v, want 503 with Retry-After", resp.StatusCode, body)
	}
	if resp, _ := do(t, s, "GET", "/healthz", "", ""); resp.StatusCode != 200 {
		t.Fatalf("healthz refused at the cap: %d", resp.StatusCode)
	}
	close(release)
	for i := 0; i < 2; i++ {
		if code := <-done; code != 200 {
			t.Fatalf("held request got %d", code)
		}
	}
	if resp, _ := do(t, s, "GET", "/api/dev/whoami", devToken, ""); resp.StatusCode != 200 {
		t.Fatalf("after the flood: %d, want 200", resp.StatusCode)
	}
}

func TestEvictionPolicyWarning(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		warn   bool
	}{
		{"noeviction is quiet", "noeviction", false},
		{"allkeys-lru warns", "allkeys-lru", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := redistest.Start(t, "--maxmemory-policy", tt.policy)
			var buf strings.Builder
			log := slog.New(slog.NewTextHandler(&buf, nil))
			cfg := config.Default()
			cfg.RedisURL = r.URL()
			b, err := connectBackend(context.Background(), cfg, log, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if got := strings.Contains(buf.String(), "maxmemory-policy noeviction"); got != tt.warn {
				t.Fatalf("warned=%v, want %v; log:\n%s", got, tt.warn, buf.String())
			}
		})
	}
}

// TestJSONFieldNamesExact: encoding/json matches field names regardless of
// case and keeps a repeated key's last value; the API takes neither, on a
// test route and on POST /run (where "TYPE" once enqueued a job).
func TestJSONFieldNamesExact(t *testing.T) {
	s := newTestServer(t)
	echoRoute(s)
	tests := []struct {
		path, body string
		msg        string
	}{
		{"/test/echo", `{"Name":"a"}`, `unknown field "Name" (field names are case-sensitive: "name")`},
		{"/test/echo", `{"name":"a","name":"b"}`, `field "name" is given more than once`},
		{"/test/echo", `{"name":"a","NAME":"b"}`, `unknown field "NAME"`},
		{"/run", `{"TYPE":"ping"}`, `unknown field "TYPE"`},
		{"/run", `{"type":"ping","Max_Retries":1}`, `unknown field "Max_Retries"`},
		{"/run", `{"type":"ping","type":"echo","payload":1}`, `field "type" is given more than once`},
		{"/assistant", `{"type":"ping","Timeout_MS":5}`, `unknown field "Timeout_MS"`},
	}
	for _, tt := range tests {
		resp, body := do(t, s, "POST", tt.path, "", tt.body)
		if resp.StatusCode != 400 || errCode(body) != "invalid" {
			t.Fatalf("POST %s %s: status %d, %v; want 400 invalid", tt.path, tt.body, resp.StatusCode, body)
		}
		if msg := errMessage(body); !strings.Contains(msg, tt.msg) {
			t.Errorf("POST %s %s: message %q, want it to contain %q", tt.path, tt.body, msg, tt.msg)
		}
	}
	if jobs, err := s.jobs.svc.List(context.Background(), queue.Filter{}); err != nil || len(jobs) != 0 {
		t.Fatalf("refused bodies left %d jobs (%v)", len(jobs), err)
	}
	// Exact names, embedded ones included, still pass.
	for path, body := range map[string]string{"/test/echo": `{"name":"a","count":2}`, "/run": `{"type":"ping","max_retries":1}`} {
		if resp, b := do(t, s, "POST", path, "", body); resp.StatusCode >= 300 {
			t.Errorf("POST %s %s: status %d, %v", path, body, resp.StatusCode, b)
		}
	}
}

// TestJSONFieldsOfEmbeddedStructs: the fields of an embedded struct, by
// value or by pointer, are the outer struct's, as encoding/json has them.
func TestJSONFieldsOfEmbeddedStructs(t *testing.T) {
	type inner struct {
		X int `json:"x"`
	}
	type byValue struct {
		inner
		Y int `json:"y"`
	}
	type byPointer struct {
		*inner
		Y int `json:"y"`
	}
	for _, v := range []any{&byValue{}, &byPointer{}} {
		got := jsonFields(reflect.TypeOf(v))
		if _, ok := got["x"]; !ok || len(got) != 2 {
			t.Errorf("%T: fields %v, want x and y", v, got)
		}
	}
}

// TestClusterClientSettings: the cluster client reloads its map of slots
// every second (go-redis's 60 s default kept commands for a dead master's
// slots failing for 22–42 s after its replica took over); a URL with the
// cluster-only max_redirects is taken, and its value kept.
func TestClusterClientSettings(t *testing.T) {
	c := redistest.StartCluster(t, 1)
	ctx := context.Background()
	for _, tt := range []struct {
		query         string
		wantRedirects int
	}{{"", 3}, {"?max_redirects=2", 2}} {
		client, kind, err := OpenRedis(ctx, c.Nodes()[0].URL()+tt.query, "auto")
		if err != nil {
			t.Fatal(err)
		}
		cc, ok := client.(*redis.ClusterClient)
		if !ok || kind != BackendRedisCluster {
			t.Fatalf("%T %q, want a cluster client", client, kind)
		}
		opt := cc.Options()
		if opt.ClusterStateReloadInterval != clusterReload || opt.MaxRedirects != tt.wantRedirects {
			t.Errorf("%q: reload every %v, %d redirects; want %v and %d", tt.query, opt.ClusterStateReloadInterval, opt.MaxRedirects, clusterReload, tt.wantRedirects)
		}
		client.Close()
	}
}

// TestClusterSlotsOfAStalledNodeBounded (fail30 F3): the cluster client's
// node clients give up on CLUSTER SLOTS of a node that does not answer
// after clusterSlotsWait, whatever the caller's context, so that a reload
// of the map of slots goes on to the next node. They waited for the read
// timeout (3 s), and a stalled old master delayed the daemons' finding its
// promoted replica by as much.
func TestClusterSlotsOfAStalledNodeBounded(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, "--cluster-node-timeout", "60000")
	client, _, err := OpenRedis(context.Background(), c.URL(), "auto")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	cc := client.(*redis.ClusterClient)
	stalled := c.Nodes()[1]
	// The node client of the master of a key on stalled: the one the
	// reload asks, with its options (the URL's, and the hook).
	node, err := cc.MasterForKey(context.Background(), "refrakt:q:{"+queueOnMaster(c, stalled, "s")+"}:pending")
	if err != nil || node.Options().Addr != stalled.Addr() {
		t.Fatalf("node client for %s: %v, %v", stalled.Addr(), node, err)
	}
	// As go-redis's reload sends it (ClusterSlots, deprecated for callers).
	clusterSlots := func() error {
		ctx := context.Background()
		return node.Process(ctx, redis.NewClusterSlotsCmd(ctx, "cluster", "slots"))
	}
	if err := clusterSlots(); err != nil {
		t.Fatalf("CLUSTER SLOTS of %s before the stall: %v", stalled.Addr(), err)
	}
	stalled.Pause()
	defer stalled.Resume()
	err = clusterSlots()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CLUSTER SLOTS of stalled %s, with no deadline of the caller: %v; want it cut at the client's bound (context.DeadlineExceeded)", stalled.Addr(), err)
	}
	// Other commands keep the read timeout: a bound for them is the caller's.
	if err := node.Ping(context.Background()).Err(); errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("PING of stalled %s cut like CLUSTER SLOTS: %v", stalled.Addr(), err)
	}
}

// TestClusterSlotsBoundLeavesOutTheDial (code30 C3): the CLUSTER SLOTS
// bound is for the answer, once connected. A cluster whose connections take
// longer than the bound to open (a remote one, a cold TLS handshake; here a
// dialer that waits 350 ms) could not load its map of slots: every node was
// cut while its connection was being made, and the first command failed.
// Built as OpenRedis builds it, with the dialer added.
func TestClusterSlotsBoundLeavesOutTheDial(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	opt, err := redis.ParseClusterURL(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	boundTimeouts(&opt.DialTimeout, &opt.ReadTimeout, &opt.WriteTimeout)
	opt.ContextTimeoutEnabled = true
	opt.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		select {
		case <-time.After(clusterSlotsWait + 50*time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	clusterResilience(opt)
	client := redis.NewClusterClient(opt)
	defer client.Close()
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Errorf("first PING of a cluster whose connections take %v to open: %v; want the map of slots loaded", clusterSlotsWait+50*time.Millisecond, err)
	}
}

// TestTokenFileOthersCannotPlant: a token directory others may write, or a
// token file of another user, is refused with a message naming it, never
// used: whoever wrote it would know the developer token.
func TestTokenFileOthersCannotPlant(t *testing.T) {
	shared := dirWithMode(t, filepath.Join(t.TempDir(), "refrakt"), 0o1777)
	planted := filepath.Join(shared, "token")
	if err := os.WriteFile(planted, []byte("attackerKnownToken12345\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, _, err := ensureTokenFile(planted, quiet); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("world-writable directory: token %q, err %v; want refused", tok, err)
	}
	// A link to a private directory is that directory.
	private := filepath.Join(t.TempDir(), "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "refrakt")
	if err := os.Symlink(private, link); err != nil {
		t.Fatal(err)
	}
	if tok, created, err := ensureTokenFile(filepath.Join(link, "token"), quiet); err != nil || !created || tok == "" {
		t.Errorf("token directory linked to a private one: %q %v %v, want a token made", tok, created, err)
	}
	if os.Geteuid() != 0 {
		t.Skip("planting a file of another user needs root")
	}
	dir := filepath.Join(t.TempDir(), "refrakt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "token")
	if err := os.WriteFile(other, []byte("attackerKnownToken12345\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(other, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if tok, _, err := ensureTokenFile(other, quiet); err == nil || !strings.Contains(err.Error(), "belongs to user 65534") {
		t.Errorf("another user's file: token %q, err %v; want refused", tok, err)
	}
}

// TestInFlightCapKeepsOperatorsIn: public requests holding every slot of
// REFRAKT_MAX_IN_FLIGHT (long /assistant waits) do not lock the developer
// and operator routes out: those count against a reserve of their own.
func TestInFlightCapKeepsOperatorsIn(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.MaxInFlight = 2 })
	defer holdSlots(t, s, "/test/hold", 2)()
	if resp, _ := do(t, s, "POST", "/run", "", `{"type":"ping"}`); resp.StatusCode != 503 {
		t.Errorf("public request at the cap: %d, want 503", resp.StatusCode)
	}
	for _, path := range []string{"/api/dev/whoami", "/api/obs/jobs", "/api/dev/jobs"} {
		if resp, body := do(t, s, "GET", path, devToken, ""); resp.StatusCode != 200 {
			t.Errorf("%s with the public slots full: %d %v, want 200", path, resp.StatusCode, body)
		}
	}
}

// TestClusterOnlyOptionsChecked: a malformed cluster-only option of QUEUE_URL
// stops start-up as a bad setting, on a cluster and on a single server
// alike, instead of being retried as an outage (or ignored).
func TestClusterOnlyOptionsChecked(t *testing.T) {
	r := redistest.Start(t)
	for _, q := range []string{"?max_redirects=x", "?read_only=maybe", "?route_randomly=yes&max_redirects=2x"} {
		cfg := config.Default()
		cfg.RedisURL = r.URL() + q
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := connectBackend(ctx, cfg, slog.New(slog.DiscardHandler), nil)
		cancel()
		var ce *config.Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "QUEUE_URL") {
			t.Errorf("%s: %v, want a config error naming QUEUE_URL", q, err)
		}
	}
	cfg := config.Default()
	cfg.RedisURL = r.URL() + "?max_redirects=2"
	b, err := connectBackend(context.Background(), cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatalf("a well-formed cluster-only option on a single server: %v", err)
	}
	b.Close()
}

// TestInFlightReserveNeedsAToken: only a request whose token checks out
// enters the operators' reserve; an open /metrics or a tokenless request to
// an operator path counts as public, or anyone could fill the reserve.
func TestInFlightReserveNeedsAToken(t *testing.T) {
	s := newTestServer(t, func(c *config.Config) { c.MaxInFlight = 2 })
	// Held without a token on an operator path: public slots.
	defer holdSlots(t, s, "/api/obs/test-hold", 2)()
	if resp, _ := do(t, s, "GET", "/metrics", "", ""); resp.StatusCode != 503 {
		t.Errorf("an open /metrics with the public slots full: %d, want 503 (it is public)", resp.StatusCode)
	}
	if resp, _ := do(t, s, "GET", "/api/dev/whoami", "", ""); resp.StatusCode != 503 {
		t.Errorf("/api/dev/whoami without a token, public slots full: %d, want 503", resp.StatusCode)
	}
	if resp, body := do(t, s, "GET", "/api/dev/whoami", devToken, ""); resp.StatusCode != 200 {
		t.Errorf("/api/dev/whoami with the developer token: %d %v, want 200 from the reserve", resp.StatusCode, body)
	}
}

// TestClusterOnlyOptions: every option go-redis's cluster parser takes and
// its single-server parser refuses is one firstSeed drops, so that a
// cluster URL with it passes the single-server check of connectBackend and
// the auto-detection's probe.
func TestClusterOnlyOptions(t *testing.T) {
	values := map[string]string{"addr": "127.0.0.1:7001", "max_redirects": "2", "read_only": "true", "route_by_latency": "true",
		"route_by_latency_tolerance": "5ms", "route_randomly": "true", "dialer_retries": "2", "dialer_retry_timeout": "10ms",
		"failing_timeout_seconds": "5"}
	for _, name := range clusterOnly {
		url := "redis://127.0.0.1:7000?" + name + "=" + values[name]
		if _, err := redis.ParseClusterURL(url); err != nil {
			t.Errorf("%s: the cluster parser refuses it: %v", name, err)
		}
		if _, err := redis.ParseURL(url); err == nil {
			t.Errorf("%s: the single-server parser takes it; it need not be dropped", name)
		}
		if err := checkURL(url); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// holdSlots serves n requests without a token to a handler registered at
// path that holds them until the returned release is called, and returns
// once all n are being served: n in-flight slots taken.
func holdSlots(t *testing.T, s *Server, path string, n int) (release func()) {
	t.Helper()
	hold := make(chan struct{})
	entered := make(chan struct{}, n)
	s.mux.Handle("GET "+path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-hold
	}))
	done := make(chan struct{}, n)
	for range n {
		go func() {
			s.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
			done <- struct{}{}
		}()
	}
	for range n {
		<-entered
	}
	return func() {
		close(hold)
		for range n {
			<-done
		}
	}
}
