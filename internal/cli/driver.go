package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/presence"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/daemon"
)

// Driver is how the jobs and limits commands reach refrakt's state: over a
// daemon's HTTP API (apiDriver) or straight over Redis with the same domain
// code the daemon runs (redisDriver). Both answer with the same types and the
// same coded errors, so every command prints the same either way.
type Driver interface {
	// Enqueue stores a job with source "cli".
	Enqueue(ctx context.Context, req queue.EnqueueRequest) (*queue.Job, error)
	// EnqueueBatch stores 1 to queue.MaxBatch jobs with source "cli", each
	// a job object as POST /api/dev/jobs/enqueue-batch takes it: all or
	// none on validation (the first bad one named jobs[i]); a failure to
	// store is a *queue.BatchError naming the jobs stored and not.
	EnqueueBatch(ctx context.Context, jobs []json.RawMessage) ([]*queue.Job, error)
	ListJobs(ctx context.Context, f queue.Filter) ([]*queue.Job, error)
	GetJob(ctx context.Context, id string) (*queue.Job, error)
	// RunJob runs job id now, whatever its run_at, and returns it finished.
	RunJob(ctx context.Context, id string) (*queue.Job, error)
	// RunNext runs the oldest pending job of queue q (any queue when empty).
	RunNext(ctx context.Context, q string) (*queue.Job, error)
	// Tick runs one tick; when it fails part way it returns, with the
	// error, what it did before (the jobs it made dead named), where the
	// driver knows it.
	Tick(ctx context.Context) (TickView, error)
	CancelJob(ctx context.Context, id string) (*queue.Job, error)
	RequeueJob(ctx context.Context, id string) (*queue.Job, error)
	// RequeueDead requeues up to limit dead jobs of queue q that died at
	// or before the cut (a zero before: before the call), oldest death
	// first (queue.Service.RequeueDead).
	RequeueDead(ctx context.Context, q string, before time.Time, limit int) (queue.RequeueDeadResult, error)
	// RemoveQueue removes a queue with no job left to run, and returns how
	// many finished jobs went with it.
	RemoveQueue(ctx context.Context, name string) (int, error)
	// SetPaused pauses (paused) or resumes queue q
	// (queue.Service.SetPaused).
	SetPaused(ctx context.Context, q string, paused bool) (queue.PauseResult, error)
	// QueueStats returns every queue's gauges and totals, as
	// GET /api/obs/jobs serves them in its "queues" (queue.Service.Stats).
	QueueStats(ctx context.Context) ([]queue.Stats, error)
	// Daemons lists the daemons alive on the backend from their
	// heartbeats, as GET /api/obs/daemons serves them (over Redis none is
	// marked self).
	Daemons(ctx context.Context) (presence.List, error)

	// Limits lists the limits with their policies and the overrides in
	// force; with a target, at least that target's limit and the overrides
	// related to it (ratelimit.Related), fetching no more than it must. The
	// caller filters (filterLimits), so a driver may return more.
	Limits(ctx context.Context, target string) (LimitsView, error)
	SetOverride(ctx context.Context, req OverrideRequest) (OverrideView, error)
	DeleteOverride(ctx context.Context, target string) error
	// ResetKey clears one bucket: its tokens, strikes and ban.
	ResetKey(ctx context.Context, key string) error
	// BanKey bans one bucket key for d (whole seconds, 1s to 720h): its
	// requests are refused until the answer's end (ratelimit.Limiter.Ban).
	BanKey(ctx context.Context, key string, d time.Duration) (BanView, error)
	// KeyState reads one bucket key's live state as its next request would
	// find it, spending and changing nothing.
	KeyState(ctx context.Context, key string) (KeyStateView, error)

	// Close releases the driver's connections.
	Close() error
}

// TickView is what one tick moved; `jobs tick -o json` prints it.
type TickView = queue.TickResult

// BanView is the answer of `limits ban -o json`, and of
// POST /api/dev/rate-limits/ban: the key as keyed and the ban's end.
type BanView = daemon.BanResponse

// LimitsView is the answer of `limits get -o json`, and of
// GET /api/dev/rate-limits/config.
type LimitsView struct {
	// Enabled is RATE_LIMIT_ENABLED of the daemon. Over Redis it and the
	// limits are what a daemon on that Redis last published, or, when none
	// runs there, what this process's environment gives.
	Enabled   bool           `json:"enabled"`
	Limits    []LimitView    `json:"limits"`
	Overrides []OverrideView `json:"overrides"`
}

// KeyStateView is one bucket's live state: the answer of
// GET /api/obs/rate-limits?key=K, which the Redis driver builds with the
// daemon's own function (daemon.KeyStateOf), so both print the same.
type KeyStateView = daemon.KeyStateResponse

// LimitView is a named limit with its policy.
type LimitView struct {
	Name          string   `json:"name"`
	Scopes        []string `json:"scopes"`
	Burst         int      `json:"burst"`
	Rate          int      `json:"rate"`
	WindowSeconds float64  `json:"window_seconds"`
	// PremiumBurst and PremiumRate are the policy of the premium tier
	// (X-RateLimit-Tier: premium, × RATE_LIMIT_PREMIUM_MULTIPLIER).
	PremiumBurst int `json:"premium_burst"`
	PremiumRate  int `json:"premium_rate"`
}

// OverrideView is one override in force. ExpiresAt is null when it never
// expires, as in the API's answer; CreatedAt is omitted when unknown.
type OverrideView struct {
	Target        string     `json:"target"`
	Capacity      int        `json:"capacity"`
	WindowSeconds float64    `json:"window_seconds"`
	Mode          string     `json:"mode,omitempty"`
	ExpiresAt     *time.Time `json:"expires_at"`
	Origin        string     `json:"origin,omitempty"`
	CreatedAt     *time.Time `json:"created_at,omitempty"`
	// Warning, on the override `limits set` stored, says it is not
	// enforced: rate limiting is off (RATE_LIMIT_ENABLED=false). Absent
	// otherwise, and in listings.
	Warning string `json:"warning,omitempty"`
}

// OverrideRequest is the body of POST /api/dev/rate-limits/config.
type OverrideRequest struct {
	Target        string `json:"target"`
	Capacity      int    `json:"capacity"`
	WindowSeconds int    `json:"window_seconds"`
	TTLSeconds    int    `json:"ttl_seconds,omitempty"`
	// Mode is sent only for shadow overrides; enforce is the default.
	Mode string `json:"mode,omitempty"`
	// Origin says who set the override in listings: always "cli" here.
	Origin string `json:"origin,omitempty"`
}

func (r OverrideRequest) window() time.Duration {
	return time.Duration(r.WindowSeconds) * time.Second
}

func (r OverrideRequest) ttl() time.Duration {
	return time.Duration(r.TTLSeconds) * time.Second
}

func limitView(l ratelimit.TieredLimit) LimitView {
	v := LimitView{Name: l.Name, Burst: l.Policy.Burst, Rate: l.Policy.Rate, WindowSeconds: l.Policy.Window.Seconds(),
		PremiumBurst: l.Premium.Burst, PremiumRate: l.Premium.Rate, Scopes: []string{}}
	for _, s := range l.Scopes {
		v.Scopes = append(v.Scopes, string(s))
	}
	return v
}

func overrideView(o ratelimit.Override) OverrideView {
	return OverrideView{Target: o.Target, Capacity: o.Capacity, WindowSeconds: o.Window.Seconds(), Mode: o.Mode, Origin: o.Origin,
		ExpiresAt: core.UTCOrNil(o.ExpiresAt), CreatedAt: core.UTCOrNil(o.CreatedAt)}
}

// rawOrDash shows a JSON payload or result as it is, "-" when absent.
func rawOrDash(b json.RawMessage) string {
	if len(b) == 0 {
		return "-"
	}
	return string(b)
}

// driver opens the Driver that o selects: Redis when --redis or
// REFRAKT_REDIS is given, the daemon's API otherwise.
func (f *Factory) driver(ctx context.Context, o *ConnOptions) (Driver, error) {
	if err := o.resolve(f.Getenv); err != nil {
		return nil, err
	}
	o.warnExposed(f.IO.ErrOut)
	if o.Redis != "" {
		d, err := newRedisDriver(ctx, o.Redis, o.Prefix, f.Getenv)
		if err != nil {
			return nil, err
		}
		for _, w := range d.warnings {
			fmt.Fprintln(f.IO.ErrOut, w)
		}
		return d, nil
	}
	return newAPIDriver(o.apiClient()), nil
}

// client is what every jobs and limits command shares: how to reach the
// state and how to print. Tests of flag parsing leave it out of comparisons.
type client struct {
	f    *Factory
	conn *ConnOptions
}

// open resolves the connection flags and opens the driver and the printer.
// The caller closes the driver.
func (c client) open(ctx context.Context) (Driver, *Printer, error) {
	d, err := c.f.driver(ctx, c.conn)
	if err != nil {
		return nil, nil, err
	}
	return d, c.f.printer(c.conn), nil
}

// do runs fn with an open driver and printer, closing the driver after.
func (c client) do(ctx context.Context, fn func(Driver, *Printer) error) error {
	d, p, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(d, p)
}
