package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/presence"
	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/redisbroker"
	"github.com/refrakt/refrakt/internal/core/queue/webhook"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
	"github.com/refrakt/refrakt/internal/daemon"
)

// redisDriver is the Driver straight over Redis: the same queue.Service on
// the same redisbroker, and the same ratelimit.Limiter on the same
// redisstore, that every daemon on this Redis runs. A job it enqueues is run
// by any daemon's workers; an override it sets reaches every daemon through
// the store's change notification (and their 1 s refresh).
type redisDriver struct {
	addr  string // the URL without its password, for error messages
	kind  string // redis or redis-cluster
	rdb   redis.UniversalClient
	jobs  *queue.Service
	store *redisstore.Store
	lim   *ratelimit.Limiter
	// read is what Limits read for its target, for KeyState of the same
	// key to take once: `limits get KEY` asks both, and one read of the
	// overrides and limits serves the table and the bucket alike.
	read *relatedRead
	// daemons are the daemons' heartbeat records (Daemons).
	daemons *presence.Store
	// hooks delivers the jobs of this shell's JOB_WEBHOOKS types that
	// `jobs run` runs.
	hooks *webhook.Client
	// warnings are the lines to print once on stderr: how this shell's
	// RATE_LIMITS and the daemons' published limits were merged.
	warnings []string
}

// relatedRead is one read of the overrides related to target and of the
// limits the daemons enforce (redisDriver.related).
type relatedRead struct {
	target string
	list   []ratelimit.Override
	pub    ratelimit.LimitSet
}

var _ Driver = (*redisDriver)(nil)

// connectTimeout bounds connecting to Redis, so a wrong address fails fast.
const connectTimeout = 5 * time.Second

// newRedisDriver connects to rawURL (a cluster when REDIS_CLUSTER says so or
// the server reports cluster_enabled:1) and builds the domain services with
// the same settings a daemon reads from the environment (JOB_HISTORY,
// JOB_LEASE, JOB_RETRY_BASE, JOB_RETRY_MAX, JOB_TIMEOUT, the RATE_LIMIT_*
// policies). The
// history limit, the retry backoff, the JOB_TIMEOUT of a job without a
// timeout_ms and the limits shown are those the
// daemons on that Redis publish, and those of the environment only when no
// daemon runs there.
func newRedisDriver(ctx context.Context, rawURL, prefix string, getenv func(string) string) (*redisDriver, error) {
	addr := config.RedactURL(rawURL)
	if !strings.HasPrefix(rawURL, "redis://") && !strings.HasPrefix(rawURL, "rediss://") && !strings.HasPrefix(rawURL, "unix://") {
		return nil, usageError{fmt.Errorf("--redis %q: want a redis://, rediss:// or unix:// URL", addr)}
	}
	quietRedisOnce.Do(func() { redis.SetLogger(quietRedisLog{}) })
	cfg, err := config.Load(onlyDriverSettings(getenv), nil)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	rdb, kind, err := daemon.OpenRedis(cctx, rawURL, cfg.RedisCluster)
	if err != nil {
		return nil, connectError(err, addr, rawURL)
	}
	// The daemons' settings where they publish them, this shell's only
	// where none does: the scripts trim each queue's history to the limit
	// they are given (this shell's JOB_HISTORY would delete finished jobs
	// the daemons keep), and a job `jobs run --redis` runs is bounded
	// (JOB_TIMEOUT) and, failing, retried (the backoff) as a daemon's would be.
	js, err := redisbroker.PublishedJobSettings(cctx, rdb, prefix, redisbroker.JobSettings{
		History: cfg.JobHistory, Backoff: daemon.RetryBackoff(cfg), JobTimeout: cfg.JobTimeout})
	if err != nil {
		_ = rdb.Close()
		return nil, connectError(err, addr, rawURL)
	}
	// A CLI process is gone before a sweep of the keyspace would end: the
	// daemons sweep for unlisted queues (redisbroker's relist.go).
	broker := redisbroker.New(rdb, redisbroker.Options{Prefix: prefix, HistoryLimit: js.History, SweepInterval: -1})
	// This shell's JOB_WEBHOOKS: `jobs enqueue` takes their types, and
	// `jobs run` delivers their jobs from this process.
	reg, hooks, err := daemon.JobRegistry(cfg)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	svc := queue.NewService(queue.Deps{Broker: broker, Registry: reg}, queue.Config{Concurrency: queue.ManualMode, Lease: cfg.JobLease, Backoff: js.Backoff,
		JobTimeout: js.JobTimeout, IdempotencyTTL: cfg.JobIdempotencyTTL,
		// `jobs run --next` hands back a job of a type this shell lacks,
		// unrun and uncounted, as `jobs run ID` refuses it before its claim.
		HandBackUnhandled: true})
	store := redisstore.New(rdb, redisstore.Options{Prefix: prefix})
	// The CLI reports through its exit path alone: a limiter's log lines
	// (an overrides read failing, then recovering) would land on the user's
	// terminal, across top's screen.
	limCfg := daemon.LimiterConfig(cfg)
	// The limits of RATE_LIMITS the daemons publish are known too, with
	// their policy (they enforce it) over this shell's for a name both
	// have: `limits set --redis api:ip:…` works without repeating the
	// daemons' RATE_LIMITS here. The warnings are printed by the caller.
	var warnings []string
	if pub, ok, err := store.PublishedLimits(cctx); err == nil && ok {
		limCfg.Custom, warnings = withPublishedLimits(limCfg.Custom, pub, limCfg.PremiumMultiplier)
	}
	lim, err := ratelimit.New(limCfg, ratelimit.Deps{Store: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		_ = store.Close()
		_ = rdb.Close()
		return nil, err
	}
	return &redisDriver{addr: addr, kind: kind, rdb: rdb, jobs: svc, store: store, lim: lim, daemons: presence.NewStore(rdb, prefix), hooks: hooks, warnings: warnings}, nil
}

// connectError is the CLI's error for err, met while connecting to rawURL
// (shown as addr, without its password).
func connectError(err error, addr, rawURL string) error {
	if strings.HasPrefix(err.Error(), "QUEUE_URL:") { // a URL go-redis cannot parse
		return usageError{fmt.Errorf("--redis %s: %v", addr, strings.TrimPrefix(err.Error(), "QUEUE_URL: "))}
	}
	if problem := daemon.AuthProblem(err); problem != "" { // the server answered, and refused the user
		return usageError{fmt.Errorf("--redis %s: %s: %s", addr, problem, config.RedactIn(err.Error(), rawURL))}
	}
	if bad := daemon.NoSuchDatabase(err); bad != nil { // the server answered: the URL names no database of it
		return usageError{fmt.Errorf("--redis %s: %v", addr, bad)}
	}
	if bad := daemon.NotACluster(err); bad != nil { // the server answered: it is no Cluster
		return usageError{fmt.Errorf("--redis %s: REDIS_CLUSTER=%s", addr, config.RedactIn(bad.Error(), rawURL))}
	}
	// The address is shown redacted; the cause is redacted against the URL
	// as given (it may quote the URL's host part, never the password).
	return unreachableError{addr: addr, err: errors.New(config.RedactIn(err.Error(), rawURL))}
}

// quietRedisOnce silences go-redis, which logs every failed dial to stderr,
// where the CLI reports a failure once, as its one-line error. The logger is
// go-redis's own process-wide setting; setting it once, before this process
// makes its first client, keeps it free of data races.
var quietRedisOnce sync.Once

// quietRedisLog drops go-redis's internal log lines.
type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}

// fail turns a backend failure into an unreachableError naming the address
// (exit 3) and passes the domain's coded errors through.
func (d *redisDriver) fail(err error) error {
	if err == nil {
		return nil
	}
	// Redis refused the user a command or key it needs (NOPERM), or its
	// password (the server's was changed since): a setting to fix (exit 2).
	if problem := daemon.AuthProblem(err); problem != "" {
		return usageError{fmt.Errorf("%s: %s: %w", d.addr, problem, unwrapCoded(err))}
	}
	// Redis answered with an error (TRYAGAIN while a slot moves, LOADING,
	// CLUSTERDOWN): it was reached, and the command failed (exit 1).
	var re redis.Error
	if errors.As(err, &re) {
		return fmt.Errorf("%s answered an error: %w", d.addr, unwrapCoded(err))
	}
	var ne net.Error
	if core.ErrorCode(err) == core.CodeUnavailable || errors.As(err, &ne) {
		return unreachableError{addr: d.addr, err: unwrapCoded(err)}
	}
	if errors.Is(err, ratelimit.ErrUnknownLimit) {
		return core.Errorf(core.CodeInvalid, "%s%s", core.ErrorMessage(err), unknownLimitHint)
	}
	return err
}

// unwrapCoded returns the cause a coded error wraps, or err: the driver names
// the address itself.
func unwrapCoded(err error) error {
	var ce *core.Error
	if errors.As(err, &ce) && ce.Err != nil {
		return ce.Err
	}
	return err
}

func (d *redisDriver) Enqueue(ctx context.Context, req queue.EnqueueRequest) (*queue.Job, error) {
	j, err := d.jobs.Enqueue(ctx, req, queue.SourceCLI)
	return j, d.fail(err)
}

func (d *redisDriver) EnqueueBatch(ctx context.Context, jobs []json.RawMessage) ([]*queue.Job, error) {
	reqs, err := daemon.DecodeBatchJobs(jobs)
	if err != nil {
		return nil, err
	}
	out, err := d.jobs.EnqueueBatch(ctx, reqs, queue.SourceCLI)
	var be *queue.BatchError
	if errors.As(err, &be) {
		// Which jobs are stored is said beside the driver's own error
		// (an unreachable Redis, its address named).
		return nil, &queue.BatchError{Stored: be.Stored, NotStored: be.NotStored, MaybeStored: be.MaybeStored, Err: d.fail(be.Err)}
	}
	return out, d.fail(err)
}

func (d *redisDriver) ListJobs(ctx context.Context, f queue.Filter) ([]*queue.Job, error) {
	jobs, err := d.jobs.List(ctx, f)
	return jobs, d.fail(err)
}

func (d *redisDriver) GetJob(ctx context.Context, id string) (*queue.Job, error) {
	j, err := d.jobs.Get(ctx, id)
	return j, d.fail(err)
}

func (d *redisDriver) RunJob(ctx context.Context, id string) (*queue.Job, error) {
	// A job of a type this process has no handler for (a webhook type of
	// the daemons' JOB_WEBHOOKS, not of this shell's) is refused before it
	// is claimed: run here, it would fail an attempt. The type of a job
	// never changes, so the check holds for the claim that follows.
	if j, err := d.jobs.Get(ctx, id); err == nil {
		if _, ok := d.jobs.Registry().Lookup(j.Type); !ok {
			return nil, d.noHandlerHere(id, j.Type, "")
		}
	}
	j, err := d.jobs.RunID(ctx, id)
	return j, d.failRun(ctx, err)
}

func (d *redisDriver) RunNext(ctx context.Context, q string) (*queue.Job, error) {
	j, err := d.jobs.RunNext(ctx, q)
	if ue := (*queue.UnhandledError)(nil); errors.As(err, &ue) {
		// Handed back unrun (HandBackUnhandled): exit 2, as `jobs run ID`.
		return nil, d.noHandlerHere(ue.ID, ue.Type, handBackFate(ue))
	}
	return j, d.failRun(ctx, err)
}

// noHandlerHere is the usage error (exit 2) of `jobs run` meeting job id of
// type typ, which this process has no handler for; fate, when not empty,
// says what became of the job, claimed, when it was not handed back at once.
func (d *redisDriver) noHandlerHere(id, typ, fate string) error {
	nothing := "nothing was run"
	if fate != "" {
		nothing += " (" + fate + ")"
	}
	return usageError{fmt.Errorf("job %s is of type %q, which this process has no handler for (registered: %s): set JOB_WEBHOOKS as the daemons have it to run it here, or let a daemon run it; %s",
		id, typ, strings.Join(d.jobs.Registry().Types(), ", "), nothing)}
}

// handBackFate says what became of a job claimed by --next and not handed
// back: "" when it was. A release that failed twice leaves it to its lease,
// whose expiry the tick counts as a failed attempt.
func handBackFate(ue *queue.UnhandledError) string {
	switch {
	case ue.HandedBack:
		return ""
	case ue.NotHeld:
		return "it was no longer held by this run: cancelled, or its lease lost meanwhile"
	default:
		return `it could not be handed back: it returns to pending when its lease (JOB_LEASE) ends, and that counts as a failed attempt, "lease expired"`
	}
}

// failRun is fail for a job run in this process: interrupted (Ctrl-C),
// the run's error says what became of the job (handed back), and Redis was
// reachable: a failure (exit 1), not an unreachable Redis (exit 3).
func (d *redisDriver) failRun(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		if errors.Is(err, queue.ErrInterrupted) {
			return errors.New(core.ErrorMessage(err))
		}
		return errors.New("interrupted before the job ran")
	}
	return d.fail(err)
}

func (d *redisDriver) Tick(ctx context.Context) (TickView, error) {
	r, err := d.jobs.Tick(ctx)
	// A tick that failed part way answers what it did before, dead jobs
	// named: no daemon logs them for this process.
	if err != nil {
		return r, d.fail(err)
	}
	return r, nil
}

func (d *redisDriver) CancelJob(ctx context.Context, id string) (*queue.Job, error) {
	j, err := d.jobs.Cancel(ctx, id)
	return j, d.fail(err)
}

func (d *redisDriver) RequeueJob(ctx context.Context, id string) (*queue.Job, error) {
	j, err := d.jobs.Requeue(ctx, id)
	return j, d.fail(err)
}

func (d *redisDriver) RequeueDead(ctx context.Context, q string, before time.Time, limit int) (queue.RequeueDeadResult, error) {
	r, err := d.jobs.RequeueDead(ctx, q, before, limit)
	return r, d.fail(err)
}

func (d *redisDriver) RemoveQueue(ctx context.Context, name string) (int, error) {
	n, err := d.jobs.RemoveQueue(ctx, name)
	return n, d.fail(err)
}

func (d *redisDriver) SetPaused(ctx context.Context, q string, paused bool) (queue.PauseResult, error) {
	r, err := d.jobs.SetPaused(ctx, q, paused)
	return r, d.fail(err)
}

func (d *redisDriver) QueueStats(ctx context.Context) ([]queue.Stats, error) {
	stats, err := d.jobs.Stats(ctx)
	if err != nil {
		return nil, d.fail(err)
	}
	return stats, nil
}

// Daemons reads the heartbeat records as the daemons' route does (their
// ages by Redis TIME); none is self.
func (d *redisDriver) Daemons(ctx context.Context) (presence.List, error) {
	recs, now, err := d.daemons.List(ctx)
	if err != nil {
		return presence.List{}, d.fail(err)
	}
	return presence.View(recs, now, ""), nil
}

func (d *redisDriver) Limits(ctx context.Context, target string) (LimitsView, error) {
	var overrides []ratelimit.Override
	var pub ratelimit.LimitSet
	var err error
	if target == "" {
		if err := d.lim.RefreshOverrides(ctx); err != nil {
			return LimitsView{}, d.fail(err)
		}
		overrides = d.lim.Overrides()
		pub, err = d.enforced(ctx)
	} else {
		var list []ratelimit.Override
		list, pub, err = d.related(ctx, target)
		overrides = d.lim.InForce(list)
		d.read = &relatedRead{target, list, pub}
	}
	if err != nil {
		return LimitsView{}, d.fail(err)
	}
	v := LimitsView{Enabled: pub.Enabled, Limits: []LimitView{}, Overrides: []OverrideView{}}
	for _, l := range pub.Limits {
		v.Limits = append(v.Limits, limitView(l))
	}
	for _, o := range overrides {
		v.Overrides = append(v.Overrides, overrideView(o))
	}
	return v, nil
}

func (d *redisDriver) SetOverride(ctx context.Context, req OverrideRequest) (OverrideView, error) {
	o, err := d.lim.SetOverride(ctx, ratelimit.Override{
		Target: req.Target, Capacity: req.Capacity, Window: req.window(), Mode: req.Mode, Origin: req.Origin,
	}, req.ttl())
	if err != nil {
		return OverrideView{}, d.fail(err)
	}
	v := overrideView(o)
	// Whether the daemons enforce it, as `limits get` tells.
	pub, err := d.enforced(ctx)
	if err != nil {
		return v, nil // stored; whether it is enforced is not known
	}
	if !pub.Enabled {
		v.Warning = ratelimit.LimitingOffWarning
	}
	return v, nil
}

// enforced is what the daemons on this Redis enforce, as they publish it;
// this process's environment speaks only when no daemon runs on it.
func (d *redisDriver) enforced(ctx context.Context) (ratelimit.LimitSet, error) {
	pub, ok, err := d.store.PublishedLimits(ctx)
	if err != nil || ok {
		return pub, err
	}
	return d.lim.LimitSet(), nil
}

// related checks target (before Redis is asked, as set, unset, reset and
// the daemon check it) and reads the overrides stored related to it (only
// those leave Redis) and the limits the daemons enforce.
func (d *redisDriver) related(ctx context.Context, target string) ([]ratelimit.Override, ratelimit.LimitSet, error) {
	if _, err := d.lim.ParseTarget(target); err != nil {
		return nil, ratelimit.LimitSet{}, err
	}
	list, err := d.store.OverridesOf(ctx, target)
	if err != nil {
		return nil, ratelimit.LimitSet{}, err
	}
	pub, err := d.enforced(ctx)
	return list, pub, err
}

func (d *redisDriver) DeleteOverride(ctx context.Context, target string) error {
	return d.fail(d.lim.DeleteOverride(ctx, target))
}

func (d *redisDriver) ResetKey(ctx context.Context, key string) error {
	return d.fail(d.lim.Reset(ctx, key))
}

func (d *redisDriver) BanKey(ctx context.Context, key string, dur time.Duration) (BanView, error) {
	k, until, err := d.lim.Ban(ctx, key, dur)
	if err != nil {
		return BanView{}, d.fail(err)
	}
	v := BanView{Banned: k, BannedUntil: until}
	// Whether the daemons enforce it, as for an override.
	if pub, err := d.enforced(ctx); err == nil && !pub.Enabled {
		v.Warning = ratelimit.BanLimitingOffWarning
	}
	return v, nil
}

// KeyState peeks at key under the limits the daemons on this Redis publish
// (this process's when none does) and the overrides stored for it; the
// penalty settings are this process's (PENALTY_*, BAN_*), as for every
// limiter the CLI runs.
func (d *redisDriver) KeyState(ctx context.Context, key string) (KeyStateView, error) {
	var list []ratelimit.Override
	var pub ratelimit.LimitSet
	if r := d.read; r != nil && r.target == key {
		d.read = nil
		list, pub = r.list, r.pub
	} else {
		var err error
		if list, pub, err = d.related(ctx, key); err != nil {
			return KeyStateView{}, d.fail(err)
		}
	}
	st, err := d.lim.PeekWith(ctx, key, pub, list)
	if err != nil {
		return KeyStateView{}, d.fail(err)
	}
	return KeyStateView{Enabled: pub.Enabled, Backend: d.kind, Bucket: daemon.KeyStateOf(st)}, nil
}

func (d *redisDriver) Close() error {
	d.hooks.CloseIdleConnections()
	_ = d.store.Close()
	return d.rdb.Close()
}

// driverSettings are the daemon settings the --redis driver reads: the
// queue's history, lease and retry backoff, the cluster choice and the
// limiter's policies.
// The others (a daemon's address, log level, tokens…) are not its business:
// a bad LOG_LEVEL left in the shell stopped `jobs list --redis` with exit 2.
var driverSettings = []string{"REDIS_CLUSTER", "JOB_HISTORY", "JOB_LEASE", "JOB_RETRY_BASE", "JOB_RETRY_MAX", "JOB_TIMEOUT",
	"RATE_LIMIT_ENABLED", "RATE_LIMIT_RUN_BURST", "RATE_LIMIT_RUN_PER_MINUTE", "RATE_LIMIT_ASSISTANT_PER_MINUTE",
	"RATE_LIMIT_PREMIUM_MULTIPLIER", "PENALTY_FACTOR", "PENALTY_DECAY", "BAN_AFTER_STRIKES", "BAN_SECONDS",
	"RATE_LIMIT_ON_BACKEND_ERROR", "RATE_LIMIT_BACKEND_TIMEOUT",
	"JOB_IDEMPOTENCY_TTL", "JOB_WEBHOOKS", "JOB_WEBHOOK_SECRET",
	"RATE_LIMITS"}

// onlyDriverSettings is getenv for the driverSettings, and nothing for the
// rest (their defaults).
func onlyDriverSettings(getenv func(string) string) func(string) string {
	return func(k string) string {
		if slices.Contains(driverSettings, k) {
			return getenv(k)
		}
		return ""
	}
}

// withPublishedLimits returns the limits of their own that the daemons
// publish (pub; they enforce them, so their policy wins for a name this
// shell's RATE_LIMITS has too) followed by those of own (this shell's) that
// pub lacks, and the warnings to print, one line each: the names whose
// policies differ, and what was left out when the merged set fails the
// limiter's check (more than 64 limits, or this shell's premium
// multiplier): first this shell's limits (the daemons' alone), then, if
// even those fail, the daemons' (this shell's alone).
func withPublishedLimits(own []ratelimit.Limit, pub ratelimit.LimitSet, premium float64) ([]ratelimit.Limit, []string) {
	var theirs []ratelimit.Limit
	for _, l := range pub.Limits {
		if !ratelimit.IsBuiltin(l.Name) {
			theirs = append(theirs, l.Limit)
		}
	}
	var warnings, differ []string
	out := slices.Clone(theirs)
	for _, o := range own {
		i := slices.IndexFunc(theirs, func(l ratelimit.Limit) bool { return l.Name == o.Name })
		if i < 0 {
			out = append(out, o)
			continue
		}
		if theirs[i].Policy != o.Policy || !slices.Equal(theirs[i].Scopes, o.Scopes) {
			differ = append(differ, o.Name)
		}
	}
	if len(differ) > 0 {
		warnings = append(warnings, fmt.Sprintf("warning: RATE_LIMITS here differs from what the daemons on this Redis published for %s: the daemons' policy is used",
			strings.Join(differ, ", ")))
	}
	const setting = "RATE_LIMIT_PREMIUM_MULTIPLIER"
	if ratelimit.CheckCustomLimits(out, premium, setting) == nil {
		return out, warnings
	}
	p := ratelimit.CheckCustomLimits(theirs, premium, setting)
	if p == nil {
		return theirs, append(warnings, "warning: this shell's RATE_LIMITS and the daemons' published limits together fail the limiter's check: only the daemons' limits are known here")
	}
	return own, append(warnings, fmt.Sprintf("warning: the limits the daemons on this Redis published fail this shell's check (limit %q: %s): only this shell's RATE_LIMITS are known here", p.Name, p.Why))
}

// unknownLimitHint is added to an unknown-limit error of the --redis
// driver: where it looked, and why a limit a daemon enforces may be missing.
const unknownLimitHint = ": neither this shell's RATE_LIMITS nor the set the daemons on this Redis last published has it " +
	"(a daemon started without RATE_LIMITS may have published last: set RATE_LIMITS in the shell)"
