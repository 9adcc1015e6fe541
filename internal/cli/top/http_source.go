package top

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// HTTPSource reads snapshots from a daemon's GET /api/obs/snapshot and
// sends the developer actions to its /api/dev routes.
type HTTPSource struct {
	server string
	token  string
	client *http.Client
}

var (
	_ Source         = (*HTTPSource)(nil)
	_ BucketResetter = (*HTTPSource)(nil)
	_ JobRequeuer    = (*HTTPSource)(nil)
)

// NewHTTPSource returns a source for the daemon at server (e.g.
// "http://127.0.0.1:8080") that sends token as a bearer token when it is not
// empty. A nil client means http.DefaultClient; deadlines come from the
// contexts the calls get.
func NewHTTPSource(server, token string, client *http.Client) *HTTPSource {
	if client == nil {
		client = http.DefaultClient
	}
	return &HTTPSource{server: strings.TrimRight(server, "/"), token: token, client: client}
}

// Name returns the daemon's URL.
func (s *HTTPSource) Name() string { return s.server }

// Fetch gets one snapshot.
func (s *HTTPSource) Fetch(ctx context.Context) (snapshot.Snapshot, error) {
	var snap snapshot.Snapshot
	body, err := s.do(ctx, http.MethodGet, "/api/obs/snapshot", nil)
	if err != nil {
		return snap, err
	}
	if err := json.Unmarshal(body, &snap); err != nil {
		return snap, core.Wrap(core.CodeInternal, err, "bad snapshot: "+err.Error())
	}
	return snap, nil
}

// ResetBucket clears the bucket key: POST /api/dev/rate-limits/reset.
func (s *HTTPSource) ResetBucket(ctx context.Context, key string) error {
	body, err := json.Marshal(struct {
		Key string `json:"key"`
	}{key})
	if err != nil {
		return err
	}
	_, err = s.do(ctx, http.MethodPost, "/api/dev/rate-limits/reset", body)
	return err
}

// RequeueJob puts the dead job id back to pending: POST /api/dev/jobs/{id}/requeue.
func (s *HTTPSource) RequeueJob(ctx context.Context, id string) error {
	_, err := s.do(ctx, http.MethodPost, "/api/dev/jobs/"+url.PathEscape(id)+"/requeue", nil)
	return err
}

// do sends one request and returns the body of a 2xx answer. Any other
// answer becomes a *core.Error with the code the daemon sent (or one derived
// from the status), and a failure to reach the daemon a CodeUnavailable one
// whose message is short enough for the header.
func (s *HTTPSource) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.server+path, rd)
	if err != nil {
		return nil, core.Wrap(core.CodeInvalid, err, "bad server URL: "+err.Error())
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, core.Wrap(core.CodeUnavailable, err, reachError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, core.Wrap(core.CodeUnavailable, err, reachError(err))
	}
	if resp.StatusCode/100 == 2 {
		return data, nil
	}
	return nil, statusError(resp.StatusCode, data)
}

// statusError rebuilds the daemon's coded error from a non-2xx answer.
func statusError(status int, body []byte) error {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e) // a body that is not our error shape still has a status
	code := e.Error.Code
	if code == "" {
		code = statusCodes[status]
	}
	if code == "" {
		code = core.CodeInternal
	}
	msg := e.Error.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(status))
	}
	return core.Errorf(code, "HTTP %d: %s", status, msg)
}

// statusCodes maps statuses to codes for answers that carry no error body
// (e.g. from a proxy in front of the daemon).
var statusCodes = map[int]string{
	http.StatusBadRequest:            core.CodeInvalid,
	http.StatusUnauthorized:          core.CodeUnauthorized,
	http.StatusForbidden:             core.CodeForbidden,
	http.StatusNotFound:              core.CodeNotFound,
	http.StatusConflict:              core.CodeConflict,
	http.StatusRequestEntityTooLarge: core.CodeTooLarge,
	http.StatusTooManyRequests:       core.CodeLimited,
	http.StatusBadGateway:            core.CodeUnavailable,
	http.StatusServiceUnavailable:    core.CodeUnavailable,
	http.StatusGatewayTimeout:        core.CodeTimeout,
}

// reachError says in a few words why the daemon could not be reached; the
// full *url.Error repeats the URL, which the header already shows.
func reachError(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return "timeout"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err.Error()
	}
	return fmt.Sprint(err)
}
