package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/presence"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/daemon"
)

// apiDriver is the Driver over a daemon's developer API.
type apiDriver struct {
	c *APIClient
}

var _ Driver = (*apiDriver)(nil)

func newAPIDriver(c *APIClient) *apiDriver { return &apiDriver{c: c} }

func (d *apiDriver) Enqueue(ctx context.Context, req queue.EnqueueRequest) (*queue.Job, error) {
	var j enqueuedJob
	if err := d.c.Do(ctx, http.MethodPost, "/api/dev/jobs/enqueue?source="+queue.SourceCLI, req, &j); err != nil {
		if req.IdempotencyKey != "" && unknownField(err, "idempotency_key") {
			return nil, core.Errorf(core.CodeInvalid,
				"the daemon at %s does not know idempotency keys (it is of an earlier version): enqueue without --idempotency-key, over Redis with --redis, or upgrade the daemon",
				config.RedactURL(d.c.Base))
		}
		return nil, err
	}
	return &j.Job, nil
}

// enqueueBatchPath is the route of EnqueueBatch, which daemons before it
// answer with a 404 of their own.
const enqueueBatchPath = "/api/dev/jobs/enqueue-batch"

func (d *apiDriver) EnqueueBatch(ctx context.Context, jobs []json.RawMessage) ([]*queue.Job, error) {
	var a daemon.EnqueuedBatch
	body, err := batchBody(jobs)
	if err != nil {
		return nil, err
	}
	err = d.c.Do(ctx, http.MethodPost, enqueueBatchPath+"?source="+queue.SourceCLI, body, &a)
	if err != nil {
		if core.ErrorCode(err) == core.CodeNotFound { // nothing else of this route is a 404
			return nil, earlierDaemonError{core.Errorf(core.CodeNotFound,
				"the daemon at %s does not know POST %s (it is of an earlier version): enqueue over Redis with --redis, one job at a time with jobs enqueue, or upgrade the daemon",
				config.RedactURL(d.c.Base), enqueueBatchPath)}
		}
		var be queue.BatchError
		if errorDetails(err, &struct {
			Stored      *[]queue.BatchRef `json:"stored"`
			NotStored   *[]queue.BatchRef `json:"not_stored"`
			MaybeStored *[]queue.BatchRef `json:"maybe_stored"`
		}{&be.Stored, &be.NotStored, &be.MaybeStored}) && (be.Stored != nil || be.NotStored != nil) {
			be.Err = err
			return nil, &be
		}
		return nil, err
	}
	out := make([]*queue.Job, len(a.Jobs))
	for i, j := range a.Jobs {
		j.Job.Replayed = j.Replayed
		out[i] = j.Job
	}
	return out, nil
}

// batchBody is the request body of EnqueueBatch, {"jobs":[…]}: the job
// objects compacted and not HTML-escaped (json.Marshal would write each <,
// > and & as 6 bytes), so that the body is the chunk's encoded lines
// (encodedLine) and batchBodyRoom's few bytes more.
func batchBody(jobs []json.RawMessage) (encodedJSON, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string][]json.RawMessage{"jobs": jobs}); err != nil {
		return nil, err
	}
	return encodedJSON(b.Bytes()), nil
}

// enqueuedJob is an enqueue's answer: the job, marked Replayed when the
// daemon said so (Idempotent-Replayed), which its JSON does not.
type enqueuedJob struct{ queue.Job }

func (e *enqueuedJob) answered(h http.Header) { e.Replayed = h.Get("Idempotent-Replayed") == "true" }

// unknownField reports whether err is a daemon's refusal of a JSON body's
// field name, as a daemon that predates the field answers (400).
func unknownField(err error, name string) bool {
	return core.ErrorCode(err) == core.CodeInvalid && strings.Contains(core.ErrorMessage(err), `unknown field "`+name+`"`)
}

func (d *apiDriver) ListJobs(ctx context.Context, f queue.Filter) ([]*queue.Job, error) {
	q := url.Values{}
	if f.Queue != "" {
		q.Set("queue", f.Queue)
	}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Offset > 0 {
		q.Set("offset", strconv.Itoa(f.Offset))
	}
	path := "/api/dev/jobs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Jobs []*queue.Job `json:"jobs"`
	}
	if err := d.c.Do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out.Jobs, nil
}

func (d *apiDriver) GetJob(ctx context.Context, id string) (*queue.Job, error) {
	return d.job(ctx, http.MethodGet, "/run/"+url.PathEscape(id))
}

func (d *apiDriver) RunJob(ctx context.Context, id string) (*queue.Job, error) {
	j, err := d.job(ctx, http.MethodPost, "/api/dev/jobs/"+url.PathEscape(id)+"/run")
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: the daemon goes on running job %s; refrakt jobs get %s shows how it ends", id, id)
	}
	return j, err
}

func (d *apiDriver) RunNext(ctx context.Context, q string) (*queue.Job, error) {
	path := "/api/dev/jobs/run-next"
	if q != "" {
		path += "?queue=" + url.QueryEscape(q)
	}
	j, err := d.job(ctx, http.MethodPost, path)
	if err != nil && ctx.Err() != nil {
		return nil, errors.New("interrupted: the daemon goes on running the job it took; refrakt jobs list --status running shows it")
	}
	return j, err
}

func (d *apiDriver) CancelJob(ctx context.Context, id string) (*queue.Job, error) {
	return d.job(ctx, http.MethodPost, "/api/dev/jobs/"+url.PathEscape(id)+"/cancel")
}

func (d *apiDriver) RequeueJob(ctx context.Context, id string) (*queue.Job, error) {
	return d.job(ctx, http.MethodPost, "/api/dev/jobs/"+url.PathEscape(id)+"/requeue")
}

func (d *apiDriver) RemoveQueue(ctx context.Context, name string) (int, error) {
	var v RemovedQueueView
	err := d.c.Do(ctx, http.MethodDelete, "/api/dev/queues?queue="+url.QueryEscape(name), nil, &v)
	return v.RemovedJobs, err
}

// requeueDeadPath is the route of RequeueDead, which daemons before it
// answer with a 404 of their own.
const requeueDeadPath = "/api/dev/queues/requeue-dead"

func (d *apiDriver) RequeueDead(ctx context.Context, q string, before time.Time, limit int) (queue.RequeueDeadResult, error) {
	v := url.Values{"queue": {q}, "limit": {strconv.Itoa(limit)}}
	if !before.IsZero() {
		v.Set("before", strconv.FormatInt(before.UnixMilli(), 10))
	}
	var a daemon.RequeuedDead
	err := d.c.Do(ctx, http.MethodPost, requeueDeadPath+"?"+v.Encode(), nil, &a)
	if err != nil {
		if noRoute(err, q) {
			return queue.RequeueDeadResult{}, earlierDaemonError{core.Errorf(core.CodeNotFound,
				"the daemon at %s does not know POST %s (it is of an earlier version): requeue over Redis with --redis, or upgrade the daemon",
				config.RedactURL(d.c.Base), requeueDeadPath)}
		}
		// A failure part way names the jobs it moved before (their ids
		// and the cut): they stay moved, and the caller says so.
		var moved queue.RequeueDeadResult
		if errorDetails(err, &a) && len(a.IDs) > 0 {
			moved = queue.RequeueDeadResult{IDs: a.IDs, Cut: time.UnixMilli(a.Before).UTC()}
		}
		return moved, err
	}
	return queue.RequeueDeadResult{IDs: a.IDs, Remaining: a.Remaining, Cut: time.UnixMilli(a.Before).UTC()}, nil
}

// pausePath and resumePath are the routes of SetPaused, which daemons
// before them answer with a 404 of their own.
const (
	pausePath  = "/api/dev/queues/pause"
	resumePath = "/api/dev/queues/resume"
)

func (d *apiDriver) SetPaused(ctx context.Context, q string, paused bool) (queue.PauseResult, error) {
	path, what := resumePath, "resume"
	if paused {
		path, what = pausePath, "pause"
	}
	var r queue.PauseResult
	err := d.c.Do(ctx, http.MethodPost, path+"?"+url.Values{"queue": {q}}.Encode(), nil, &r)
	if noRoute(err, q) {
		return queue.PauseResult{}, earlierDaemonError{core.Errorf(core.CodeNotFound,
			"the daemon at %s does not know POST %s (it is of an earlier version, too old to %s a queue): %s over Redis with --redis, or upgrade the daemon",
			config.RedactURL(d.c.Base), path, what, what)}
	}
	return r, err
}

// QueueStats reads GET /api/obs/jobs, the route of the queue gauges that an
// operator token may read (its recent jobs and types are not used).
func (d *apiDriver) QueueStats(ctx context.Context) ([]queue.Stats, error) {
	var ov struct {
		Queues []queue.Stats `json:"queues"`
	}
	if err := d.c.Do(ctx, http.MethodGet, "/api/obs/jobs", nil, &ov); err != nil {
		return nil, err
	}
	return ov.Queues, nil
}

// daemonsPath is the route of Daemons, which daemons before it answer
// with a 404 of their own.
const daemonsPath = "/api/obs/daemons"

// Daemons reads GET /api/obs/daemons, which an operator token may read.
func (d *apiDriver) Daemons(ctx context.Context) (presence.List, error) {
	var l presence.List
	err := d.c.Do(ctx, http.MethodGet, daemonsPath, nil, &l)
	if core.ErrorCode(err) == core.CodeNotFound {
		return presence.List{}, earlierDaemonError{core.Errorf(core.CodeNotFound,
			"the daemon at %s does not know GET %s (it is of an earlier version, which writes no heartbeat): upgrade the daemon; over Redis with --redis, the daemons that write one are listed",
			config.RedactURL(d.c.Base), daemonsPath)}
	}
	return l, err
}

// noRoute reports whether err is a daemon's 404 for a route of queue q it
// predates: its 404 for an unknown queue is its queue.QueueNotFoundError,
// any other 404 (no route, in its words or the mux's) is a daemon of an
// earlier version.
func noRoute(err error, q string) bool {
	return core.ErrorCode(err) == core.CodeNotFound && core.ErrorMessage(err) != core.ErrorMessage(queue.QueueNotFoundError(q))
}

// earlierDaemonError is a daemon's 404 for a route it predates, so that
// `top` can say it in a line of its own.
type earlierDaemonError struct{ err error }

func (e earlierDaemonError) Error() string { return e.err.Error() }
func (e earlierDaemonError) Unwrap() error { return e.err }

func (d *apiDriver) job(ctx context.Context, method, path string) (*queue.Job, error) {
	var j queue.Job
	if err := d.c.Do(ctx, method, path, nil, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

func (d *apiDriver) Tick(ctx context.Context) (TickView, error) {
	var r TickView
	err := d.c.Do(ctx, http.MethodPost, "/api/dev/jobs/tick", nil, &r)
	return r, err
}

const overridesPath = "/api/dev/rate-limits/config"

func (d *apiDriver) Limits(ctx context.Context, target string) (LimitsView, error) {
	path := overridesPath
	if target != "" {
		path += "?target=" + url.QueryEscape(target)
	}
	var v LimitsView
	if err := d.c.Do(ctx, http.MethodGet, path, nil, &v); err != nil {
		return LimitsView{}, err
	}
	if v.Limits == nil {
		v.Limits = []LimitView{}
	}
	if v.Overrides == nil {
		v.Overrides = []OverrideView{}
	}
	return v, nil
}

// SetOverride posts the override and answers it as the daemon stored it
// (canonical target, expiry); when the answer does not carry it, it is read
// back from the listing.
func (d *apiDriver) SetOverride(ctx context.Context, req OverrideRequest) (OverrideView, error) {
	var o OverrideView
	if err := d.c.Do(ctx, http.MethodPost, overridesPath, req, &o); err != nil {
		return OverrideView{}, err
	}
	if o.Target != "" {
		return o, nil
	}
	v, err := d.Limits(ctx, "")
	if err != nil {
		return OverrideView{}, err
	}
	for _, x := range v.Overrides {
		if x.Target == ratelimit.CanonicalTarget(req.Target) {
			return x, nil
		}
	}
	return OverrideView{Target: req.Target, Capacity: req.Capacity, WindowSeconds: float64(req.WindowSeconds), Mode: req.Mode}, nil
}

func (d *apiDriver) DeleteOverride(ctx context.Context, target string) error {
	return d.c.Do(ctx, http.MethodDelete, overridesPath+"?target="+url.QueryEscape(target), nil, nil)
}

func (d *apiDriver) ResetKey(ctx context.Context, key string) error {
	return d.c.Do(ctx, http.MethodPost, "/api/dev/rate-limits/reset", map[string]string{"key": key}, nil)
}

// banPath is the route of BanKey, which daemons before it answer with a
// 404 of their own.
const banPath = "/api/dev/rate-limits/ban"

func (d *apiDriver) BanKey(ctx context.Context, key string, dur time.Duration) (BanView, error) {
	var v BanView
	err := d.c.Do(ctx, http.MethodPost, banPath, map[string]any{"key": key, "seconds": int64(dur / time.Second)}, &v)
	// The route answers no 404 of its own: any is a daemon without it.
	if core.ErrorCode(err) == core.CodeNotFound {
		return BanView{}, earlierDaemonError{core.Errorf(core.CodeNotFound,
			"the daemon at %s does not know POST %s (it is of an earlier version, too old to ban a key): ban over Redis with --redis, or upgrade the daemon",
			config.RedactURL(d.c.Base), banPath)}
	}
	return v, err
}

func (d *apiDriver) KeyState(ctx context.Context, key string) (KeyStateView, error) {
	var v KeyStateView
	err := d.c.Do(ctx, http.MethodGet, "/api/obs/rate-limits?key="+url.QueryEscape(key), nil, &v)
	return v, err
}

func (d *apiDriver) Close() error { return nil }
