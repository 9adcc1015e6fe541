package top

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// request is what the fake daemon saw.
type request struct {
	Method, Path, Auth, Body string
}

func TestHTTPSource(t *testing.T) {
	fixture, err := os.ReadFile("testdata/snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		status   int
		body     string
		call     func(*HTTPSource) error
		wantReq  request
		wantCode string
		wantMsg  string
	}{
		{
			name: "fetch sends the bearer token", status: 200, body: string(fixture),
			call: func(s *HTTPSource) error {
				snap, err := s.Fetch(context.Background())
				if err == nil && snap.Queues[0].Pending != 1423 {
					t.Errorf("pending = %d, want 1423", snap.Queues[0].Pending)
				}
				return err
			},
			wantReq: request{"GET", "/api/obs/snapshot", "Bearer tok", ""},
		},
		{
			name: "reset posts the key", status: 200, body: `{}`,
			call:    func(s *HTTPSource) error { return s.ResetBucket(context.Background(), "run:ip:203.0.113.7") },
			wantReq: request{"POST", "/api/dev/rate-limits/reset", "Bearer tok", `{"key":"run:ip:203.0.113.7"}`},
		},
		{
			name: "requeue posts to the job", status: 200, body: `{}`,
			call:    func(s *HTTPSource) error { return s.RequeueJob(context.Background(), "9f2c") },
			wantReq: request{"POST", "/api/dev/jobs/9f2c/requeue", "Bearer tok", ""},
		},
		{
			name: "the daemon's coded error comes back", status: 403,
			body:     `{"error":{"code":"forbidden","message":"needs the developer role"}}`,
			call:     func(s *HTTPSource) error { return s.RequeueJob(context.Background(), "9f2c") },
			wantReq:  request{"POST", "/api/dev/jobs/9f2c/requeue", "Bearer tok", ""},
			wantCode: core.CodeForbidden, wantMsg: "HTTP 403: needs the developer role",
		},
		{
			name: "a status without an error body still has a code", status: 401, body: "nope",
			call:     func(s *HTTPSource) error { _, err := s.Fetch(context.Background()); return err },
			wantReq:  request{"GET", "/api/obs/snapshot", "Bearer tok", ""},
			wantCode: core.CodeUnauthorized, wantMsg: "HTTP 401: unauthorized",
		},
		{
			name: "a body that is not a snapshot", status: 200, body: "[1,2]",
			call:     func(s *HTTPSource) error { _, err := s.Fetch(context.Background()); return err },
			wantReq:  request{"GET", "/api/obs/snapshot", "Bearer tok", ""},
			wantCode: core.CodeInternal,
			wantMsg:  "bad snapshot: json: cannot unmarshal array into Go value of type snapshot.Snapshot",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got request
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				got = request{r.Method, r.URL.Path, r.Header.Get("Authorization"), string(body)}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			err := tt.call(NewHTTPSource(srv.URL+"/", "tok", srv.Client()))
			if diff := cmp.Diff(tt.wantReq, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			var gotCode, gotMsg string
			if err != nil {
				gotCode, gotMsg = core.ErrorCode(err), core.ErrorMessage(err)
			}
			if diff := cmp.Diff([2]string{tt.wantCode, tt.wantMsg}, [2]string{gotCode, gotMsg}); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHTTPSourceUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	_, err := NewHTTPSource(url, "", nil).Fetch(context.Background())
	got := [2]string{core.ErrorCode(err), core.ErrorMessage(err)}
	if diff := cmp.Diff([2]string{core.CodeUnavailable, "connection refused"}, got); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
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
