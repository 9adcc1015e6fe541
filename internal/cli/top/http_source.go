package top

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/snapshot"
)

// Caller is a daemon's HTTP API as the CLI's client (cli.APIClient)
// exposes it: it sends in as JSON, decodes a 2xx answer into out, and
// turns an error answer into a *core.Error with the daemon's code; a
// daemon it cannot reach is an error without a *core.Error in its chain.
// `top` keeps no HTTP code of its own, so tokens, timeouts and error codes
// work as in every other command.
type Caller interface {
	Do(ctx context.Context, method, path string, in, out any) error
}

// HTTPSource reads snapshots from a daemon's GET /api/obs/snapshot and
// sends the developer actions to its /api/dev routes.
type HTTPSource struct {
	name string
	api  Caller
}

var (
	_ Source         = (*HTTPSource)(nil)
	_ BucketResetter = (*HTTPSource)(nil)
	_ BucketBanner   = (*HTTPSource)(nil)
	_ JobRequeuer    = (*HTTPSource)(nil)
	_ RoleSource     = (*HTTPSource)(nil)
)

// NewHTTPSource returns a source calling api; name is the daemon's URL,
// for the header, without its password (config.RedactURL).
func NewHTTPSource(name string, api Caller) *HTTPSource {
	return &HTTPSource{name: name, api: api}
}

// Name returns the daemon's URL, as given to NewHTTPSource.
func (s *HTTPSource) Name() string { return s.name }

// snapshotPath is the daemon's route of the snapshot.
const snapshotPath = "/api/obs/snapshot"

// Fetch gets one snapshot: GET /api/obs/snapshot. A daemon that answers
// it is unavailable (503: its backend down or not connected yet) is up: the
// error says so (backendDownError), apart from one that does not answer,
// and from a bare 503 without the daemon's error envelope (a load
// balancer with no daemon behind it: noDaemonError). An answer that is
// not a snapshot (an empty or `{}` body, HTML: a proxy's or another
// service's page) is an error (notSnapshotError), not a daemon with no
// queues that is not ready.
func (s *HTTPSource) Fetch(ctx context.Context) (snapshot.Snapshot, error) {
	var snap snapshot.Snapshot
	err := s.api.Do(ctx, http.MethodGet, snapshotPath, nil, &snap)
	var answer *core.Error
	switch {
	case err == nil && (snap.GeneratedAt.IsZero() || snap.Daemon.Version == ""):
		return snapshot.Snapshot{}, notSnapshotError{errors.New("not a refrakt snapshot (no generated_at or daemon version)")}
	case errors.As(err, new(*json.SyntaxError)), errors.As(err, new(*json.UnmarshalTypeError)):
		return snapshot.Snapshot{}, notSnapshotError{err}
	case errors.As(err, &answer) && answer.Code == core.CodeUnavailable:
		switch {
		case strings.HasPrefix(answer.Message, http.MethodGet+" "+snapshotPath+": "):
			// The API client's words for a status without the daemon's
			// error envelope: no daemon said it.
			return snap, noDaemonError{err}
		case strings.HasPrefix(answer.Message, core.BusyMessage):
			return snap, busyError{err}
		}
		err = backendDownError{err}
	}
	return snap, err
}

// notSnapshotError is a 2xx answer that is not a snapshot: something
// answered at the address, not a refrakt daemon.
type notSnapshotError struct{ err error }

func (e notSnapshotError) Error() string { return e.err.Error() }
func (e notSnapshotError) Unwrap() error { return e.err }

// noDaemonError is a 503 without the daemon's error envelope: a proxy or
// load balancer answered for lack of a server behind it.
type noDaemonError struct{ err error }

func (e noDaemonError) Error() string { return e.err.Error() }
func (e noDaemonError) Unwrap() error { return e.err }

// busyError is a daemon's answer that it serves as many requests as it may
// (REFRAKT_MAX_IN_FLIGHT): up and busy, nothing behind it down.
type busyError struct{ err error }

func (e busyError) Error() string { return e.err.Error() }
func (e busyError) Unwrap() error { return e.err }

// backendDownError is a daemon's answer that its backend is unavailable:
// the daemon is up, what it needs behind it is not.
type backendDownError struct{ err error }

func (e backendDownError) Error() string { return e.err.Error() }
func (e backendDownError) Unwrap() error { return e.err }

// Role asks the daemon the role of the token: GET /api/obs/whoami.
func (s *HTTPSource) Role(ctx context.Context) (string, error) {
	var who struct {
		Role string `json:"role"`
	}
	err := s.api.Do(ctx, http.MethodGet, "/api/obs/whoami", nil, &who)
	return who.Role, err
}

// ResetBucket clears the bucket key (tokens, strikes, ban):
// POST /api/dev/rate-limits/reset.
func (s *HTTPSource) ResetBucket(ctx context.Context, key string) error {
	body := struct {
		Key string `json:"key"`
	}{key}
	return s.api.Do(ctx, http.MethodPost, "/api/dev/rate-limits/reset", body, nil)
}

// BanBucket bans the bucket key for d: POST /api/dev/rate-limits/ban. A
// daemon of an earlier version answers 404, which the footer says.
func (s *HTTPSource) BanBucket(ctx context.Context, key string, d time.Duration) error {
	body := struct {
		Key     string `json:"key"`
		Seconds int64  `json:"seconds"`
	}{key, int64(d / time.Second)}
	return s.api.Do(ctx, http.MethodPost, "/api/dev/rate-limits/ban", body, nil)
}

// RequeueJob puts the dead job id back to pending:
// POST /api/dev/jobs/{id}/requeue.
func (s *HTTPSource) RequeueJob(ctx context.Context, id string) error {
	return s.api.Do(ctx, http.MethodPost, "/api/dev/jobs/"+url.PathEscape(id)+"/requeue", nil, nil)
}
