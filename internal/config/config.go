// Package config holds every setting of `refrakt serve` in one struct with
// its defaults, parses them from flags and environment variables (a flag wins
// over its variable, a variable over the default) and validates them, so a
// malformed value stops start-up with one line naming the setting.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/webhook"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// Config is the daemon's configuration. Each field names its environment
// variable and default; `refrakt serve --help` lists the same.
type Config struct {
	// Addr is where the HTTP API listens. REFRAKT_ADDR, --addr, default ":8080".
	Addr string
	// RedisURL selects the Redis backend; empty means the embedded memory
	// backend. QUEUE_URL, --redis, default "".
	RedisURL string
	// Prefix starts every Redis key, so deployments can share a Redis.
	// REFRAKT_PREFIX, default "refrakt:".
	Prefix string
	// RedisCluster is "auto" (detect cluster_enabled:1), "true" or "false".
	// REDIS_CLUSTER, default "auto".
	RedisCluster string
	// TrustedProxies are the peers whose identity headers are believed.
	// TRUSTED_PROXIES, comma-separated CIDRs, default "127.0.0.0/8,::1/128";
	// "none" trusts no peer (an empty list). A value that lists no range
	// ("," or an empty flag) trusts no peer either, but leaves it nil, so
	// that start-up can warn that it may not be meant.
	TrustedProxies []netip.Prefix
	// MaxInFlight caps concurrent requests (beyond it: 503), health checks
	// excepted. REFRAKT_MAX_IN_FLIGHT, default 1024.
	MaxInFlight int
	// ClientIPHeader names the header a trusted proxy puts the client IP in;
	// "" reads X-Forwarded-For alone. CLIENT_IP_HEADER, default
	// "CF-Connecting-IP"; "none" is "".
	ClientIPHeader string

	// PrometheusEnabled serves metrics. PROMETHEUS_ENABLED, default true.
	PrometheusEnabled bool
	// PrometheusRoute is the metrics path. PROMETHEUS_METRICS_ROUTE, default "/metrics".
	PrometheusRoute string
	// PrometheusBearerToken, when set, is required to scrape.
	// PROMETHEUS_BEARER_TOKEN, default "".
	PrometheusBearerToken string
	// PrometheusQueuePollInterval is how often the queue gauges are sampled.
	// PROMETHEUS_QUEUE_POLL_INTERVAL, default 5s.
	PrometheusQueuePollInterval time.Duration

	// RateLimitEnabled turns rate limiting on. RATE_LIMIT_ENABLED, default true.
	RateLimitEnabled bool
	// RunBurst is the bucket capacity of the `run` limit. RATE_LIMIT_RUN_BURST, default 10.
	RunBurst int
	// RunPerMinute is the refill of `run` per 60s. RATE_LIMIT_RUN_PER_MINUTE, default 30.
	RunPerMinute int
	// AssistantPerMinute is the `assistant` limit per 60s.
	// RATE_LIMIT_ASSISTANT_PER_MINUTE, default 20.
	AssistantPerMinute int
	// PremiumMultiplier scales burst and rate for X-RateLimit-Tier: premium.
	// RATE_LIMIT_PREMIUM_MULTIPLIER, default 3.
	PremiumMultiplier float64
	// PenaltyFactor shrinks capacity per strike. PENALTY_FACTOR, default 0.5.
	PenaltyFactor float64
	// PenaltyDecay removes one strike per period without a 429. PENALTY_DECAY, default 60s.
	PenaltyDecay time.Duration
	// BanAfterStrikes bans a key at this many strikes. BAN_AFTER_STRIKES, default 5.
	BanAfterStrikes int
	// BanDuration is the first ban's length. BAN_SECONDS, default 60s.
	BanDuration time.Duration
	// OnBackendError is what the limiter does when Redis fails: local, allow
	// or deny. RATE_LIMIT_ON_BACKEND_ERROR, default "local".
	OnBackendError string
	// BackendTimeout bounds each limiter call to Redis.
	// RATE_LIMIT_BACKEND_TIMEOUT, default 100ms.
	BackendTimeout time.Duration
	// RateLimits are limits of the user's own, decided for a proxy by the
	// decision route (GET /api/check/{limit}). RATE_LIMITS, --rate-limits:
	// "NAME=RATE/WINDOW [burst=N] [scopes=S1,S2]; …" (ratelimit.ParseLimits),
	// default none.
	RateLimits []ratelimit.Limit

	// QueueMaxPending refuses new work above this many pending jobs (0 = off).
	// QUEUE_MAX_PENDING, default 0.
	QueueMaxPending int
	// QueueMaxAge refuses new work when the oldest pending job is older (0 = off).
	// QUEUE_MAX_AGE_SECONDS, default 0.
	QueueMaxAge time.Duration
	// QueueMaxQueues bounds how many distinct queues the public may make
	// exist: a job for a new queue beyond it is refused on POST /run and
	// /assistant (0 = no bound). Every queue is work for each fetch, tick
	// and gauge sample, and POST /run is public, so the bound keeps
	// anonymous callers from growing that work at will; the developer
	// enqueue and the CLI are not bound. QUEUE_MAX_QUEUES, default 100.
	QueueMaxQueues int
	// WorkerConcurrency is the number of worker goroutines; 0 is manual mode.
	// WORKER_CONCURRENCY, --workers, default 4.
	WorkerConcurrency int
	// WorkerQueues are the queues this daemon's workers take jobs from,
	// with their weights; nil is every queue, round-robin. WORKER_QUEUES,
	// --worker-queues: comma-separated NAME[=WEIGHT] (weight 1-1000,
	// default 1), at most 100; default "" (every queue).
	WorkerQueues []queue.WorkerQueue
	// WorkerQueueOrder is how each fetch visits WorkerQueues: weighted (a
	// random order, a queue first with the chance weight/sum) or strict
	// (the listed order). WORKER_QUEUE_ORDER, --worker-queue-order,
	// default "weighted".
	WorkerQueueOrder string
	// TickInterval is how often due scheduled and retry jobs are promoted.
	// TICK_INTERVAL, default 1s.
	TickInterval time.Duration
	// JobHistory is how many succeeded and cancelled jobs are kept per queue,
	// and how many dead jobs. JOB_HISTORY, default 200.
	JobHistory int
	// JobLease is how long a running job is held before it is recovered.
	// JOB_LEASE, default 30s.
	JobLease time.Duration
	// JobRetryBase is the delay before a failed job's first retry, doubled
	// per retry up to JobRetryMax, each spread by ±20%. JOB_RETRY_BASE,
	// default 100ms; at least 1ms.
	JobRetryBase time.Duration
	// JobRetryMax caps the delay before a retry. JOB_RETRY_MAX, default 1h;
	// at least JobRetryBase, at most MaxJobRetryMax.
	JobRetryMax time.Duration
	// JobTimeout bounds one run of a job's handler when the job names no
	// timeout_ms of its own: at the deadline its context is cancelled and
	// the attempt fails. JOB_TIMEOUT, default 30m; at least 1ms, at most
	// queue.MaxJobTimeout (0 is refused: every job has a bound).
	JobTimeout time.Duration
	// JobIdempotencyTTL is how long an enqueue's idempotency key is kept
	// (a retry within it answers the key's job). JOB_IDEMPOTENCY_TTL,
	// default 24h; at least 1s, at most 720h.
	JobIdempotencyTTL time.Duration
	// JobWebhooks are the job types run by webhooks: each job of Type is
	// POSTed to URL, the answer its outcome. JOB_WEBHOOKS
	// (TYPE=URL,TYPE=URL), default none.
	JobWebhooks []webhook.Target
	// JobWebhookSecret signs every webhook delivery (Refrakt-Signature)
	// when set; at least 16 bytes. JOB_WEBHOOK_SECRET, default "".
	JobWebhookSecret string
	// ShutdownTimeout bounds graceful shutdown. SHUTDOWN_TIMEOUT, default 10s.
	ShutdownTimeout time.Duration
	// ShutdownDelay (at most MaxShutdownDelay) is how long the daemon goes on serving after a stop
	// signal, with /readyz answering 503 and keep-alives off, before the
	// stop begins: the time a load balancer needs to see it not ready and
	// send no more requests. SHUTDOWN_DELAY, default 0 (the stop begins at
	// once).
	ShutdownDelay time.Duration

	// DeveloperToken grants the developer role; generated when empty.
	// REFRAKT_DEVELOPER_TOKEN, default "".
	DeveloperToken string
	// OperatorToken grants the operator role. REFRAKT_OPERATOR_TOKEN, default "".
	OperatorToken string

	// LogFormat is text or json. LOG_FORMAT, default "text".
	LogFormat string
	// LogLevel is debug, info, warn or error. LOG_LEVEL, default "info".
	LogLevel string

	// workerWeightsGiven is set when WORKER_QUEUES writes a weight
	// (NAME=WEIGHT), =1 included: strict refuses any.
	workerWeightsGiven bool

	// flagged maps the environment variable of each setting a flag gave
	// to that flag ("WORKER_CONCURRENCY" to "--workers"), so that a message
	// names a setting as the user gave it (SettingName). Load fills it.
	flagged map[string]string
}

// SettingName is the name a message gives the setting of environment
// variable env: its flag ("--workers") when a flag gave the value, else env.
func (c Config) SettingName(env string) string {
	if f, ok := c.flagged[env]; ok {
		return f
	}
	return env
}

// MaxShutdownDelay bounds SHUTDOWN_DELAY: a load balancer sees a daemon
// not ready within minutes, and a delay of hours (a unit mistyped) would
// leave every stop waiting for a supervisor's SIGKILL.
const MaxShutdownDelay = time.Hour

// MaxJobRetryMax bounds JOB_RETRY_MAX: a longer cap holds a failing job in
// the retry set for weeks (10 retries at the cap), out of sight of anyone
// watching for dead jobs, while its cause is long fixed or forgotten.
const MaxJobRetryMax = queue.MaxBackoffCap

// Default returns the configuration with every default applied.
func Default() Config {
	return Config{
		Addr:                        ":8080",
		Prefix:                      "refrakt:",
		RedisCluster:                "auto",
		TrustedProxies:              []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		ClientIPHeader:              "CF-Connecting-IP",
		MaxInFlight:                 1024,
		PrometheusEnabled:           true,
		PrometheusRoute:             "/metrics",
		PrometheusQueuePollInterval: 5 * time.Second,
		RateLimitEnabled:            true,
		RunBurst:                    10,
		RunPerMinute:                30,
		AssistantPerMinute:          20,
		PremiumMultiplier:           3,
		PenaltyFactor:               0.5,
		PenaltyDecay:                60 * time.Second,
		BanAfterStrikes:             5,
		BanDuration:                 60 * time.Second,
		OnBackendError:              "local",
		BackendTimeout:              100 * time.Millisecond,
		QueueMaxQueues:              100,
		WorkerConcurrency:           4,
		WorkerQueueOrder:            queue.OrderWeighted,
		TickInterval:                time.Second,
		JobHistory:                  200,
		JobLease:                    30 * time.Second,
		JobRetryBase:                100 * time.Millisecond,
		JobRetryMax:                 time.Hour,
		JobTimeout:                  queue.DefaultJobTimeout,
		JobIdempotencyTTL:           queue.DefaultIdempotencyTTL,
		ShutdownTimeout:             10 * time.Second,
		LogFormat:                   "text",
		LogLevel:                    "info",
	}
}

// apiRoute reports whether path is, or lies under, a path the daemon's API
// serves (internal/daemon/routes.go), where the metrics endpoint would
// collide with it or hide part of it.
func apiRoute(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/run", "/assistant", "/api":
		return true
	}
	return strings.HasPrefix(path, "/run/") || strings.HasPrefix(path, "/api/")
}

// headerName reports whether h is an HTTP field name (RFC 9110's token).
func headerName(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return h != ""
}

// checkListenAddr checks that addr is a host (or nothing) and a port as
// net.Listen takes it: a number from 0 to 65535, a service name (http), or
// nothing (any free port). Whether the host can be bound is for the
// listener to say.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("is not host:port")
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("has port %q; want a number from 0 to 65535 or a service name", port)
	}
	return nil
}

// Validate checks ranges and combinations that parsing alone cannot. Each
// mistake names its setting as it was given (SettingName).
func (c Config) Validate() error {
	var errs []string
	bad := func(env, format string, args ...any) {
		errs = append(errs, c.SettingName(env)+": "+fmt.Sprintf(format, args...))
	}
	if c.Addr == "" {
		bad("REFRAKT_ADDR", "must not be empty (e.g. :8080 or 127.0.0.1:0)")
	} else if err := checkListenAddr(c.Addr); err != nil {
		bad("REFRAKT_ADDR", "%q %v (e.g. :8080, 127.0.0.1:0 or [::1]:8080)", c.Addr, err)
	}
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") && !strings.HasPrefix(c.RedisURL, "unix://") {
		bad("QUEUE_URL", "%q is not a redis://, rediss:// or unix:// URL", RedactURL(c.RedisURL))
	}
	if !strings.HasPrefix(c.PrometheusRoute, "/") || strings.ContainsAny(c.PrometheusRoute, " \t{}?#") || c.PrometheusRoute == "/" {
		bad("PROMETHEUS_METRICS_ROUTE", "%q must start with / and be a plain path such as /metrics", c.PrometheusRoute)
	} else if !cleanPath(c.PrometheusRoute) {
		bad("PROMETHEUS_METRICS_ROUTE", "%q is not a clean path (no //, /./ or /../), such as /metrics", c.PrometheusRoute)
	} else if apiRoute(c.PrometheusRoute) {
		bad("PROMETHEUS_METRICS_ROUTE", "%q is a path of the API; choose another, such as /metrics", c.PrometheusRoute)
	}
	if h := c.ClientIPHeader; h != "" && !headerName(h) {
		bad("CLIENT_IP_HEADER", "%q is not a header name (letters, digits and !#$%%&'*+-.^_`|~)", h)
	}
	// Whole numbers from 1; those the limiter bounds (max > 0) are checked
	// against its bounds here, so that a value past them stops start-up
	// before the listener binds, with the range.
	for _, p := range []struct {
		env string
		v   int
		max int
	}{
		{"RATE_LIMIT_RUN_BURST", c.RunBurst, ratelimit.MaxCapacity},
		{"RATE_LIMIT_RUN_PER_MINUTE", c.RunPerMinute, ratelimit.MaxCapacity},
		{"RATE_LIMIT_ASSISTANT_PER_MINUTE", c.AssistantPerMinute, ratelimit.MaxCapacity},
		{"BAN_AFTER_STRIKES", c.BanAfterStrikes, ratelimit.MaxBanAfterStrikes},
		{"JOB_HISTORY", c.JobHistory, 0},
		{"REFRAKT_MAX_IN_FLIGHT", c.MaxInFlight, 0},
	} {
		switch {
		case p.max > 0 && (p.v < 1 || p.v > p.max):
			bad(p.env, "%d must be between 1 and %d", p.v, p.max)
		case p.v < 1:
			bad(p.env, "%d must be at least 1", p.v)
		}
	}
	if c.PremiumMultiplier < 1 || c.PremiumMultiplier > ratelimit.MaxPremiumMultiplier {
		bad("RATE_LIMIT_PREMIUM_MULTIPLIER", "%g must be between 1 and %d", c.PremiumMultiplier, ratelimit.MaxPremiumMultiplier)
	}
	// The rates a bucket refills, in both tiers, must be exact to 1% (a
	// token per whole microsecond).
	rates := ratelimit.Config{RunPerMinute: c.RunPerMinute, AssistantPerMinute: c.AssistantPerMinute, PremiumMultiplier: c.PremiumMultiplier}
	for _, p := range rates.RefillProblems() {
		bad(p.Setting, "%s", p.Message(c.SettingName("RATE_LIMIT_PREMIUM_MULTIPLIER")))
	}
	if p := ratelimit.CheckCustomLimits(c.RateLimits, c.PremiumMultiplier, c.SettingName("RATE_LIMIT_PREMIUM_MULTIPLIER")); p != nil {
		bad("RATE_LIMITS", "entry %d (%s): %s", p.Entry, p.Name, p.Why)
	}
	if c.BanDuration > ratelimit.MaxBan {
		bad("BAN_SECONDS", "%s must be at most %s: a ban, repeats included, lasts at most an hour", c.BanDuration, ratelimit.MaxBan)
	}
	if c.ShutdownDelay > MaxShutdownDelay {
		bad("SHUTDOWN_DELAY", "%s must be at most %s: a stop signal would leave the daemon serving that long (a unit mistyped?)", c.ShutdownDelay, MaxShutdownDelay)
	}
	if c.PenaltyFactor <= 0 || c.PenaltyFactor > 1 {
		bad("PENALTY_FACTOR", "%g must be in (0, 1]", c.PenaltyFactor)
	}
	if c.WorkerConcurrency < 0 || c.WorkerConcurrency > 1024 {
		bad("WORKER_CONCURRENCY", "%d must be between 0 and 1024", c.WorkerConcurrency)
	}
	if !oneOf(c.WorkerQueueOrder, workerQueueOrders...) {
		bad("WORKER_QUEUE_ORDER", "%q must be weighted or strict", c.WorkerQueueOrder)
	} else if c.WorkerQueueOrder == queue.OrderStrict {
		switch {
		case len(c.WorkerQueues) == 0:
			bad("WORKER_QUEUE_ORDER", "strict needs %s: the queues in the order to visit them (without it every queue is taken round-robin)", c.SettingName("WORKER_QUEUES"))
		case c.workerWeightsGiven:
			bad("WORKER_QUEUE_ORDER", "strict takes no weights, and %s gives some: list the queues as NAME alone, in order, or use weighted", c.SettingName("WORKER_QUEUES"))
		}
	}
	if c.QueueMaxPending < 0 {
		bad("QUEUE_MAX_PENDING", "%d must not be negative", c.QueueMaxPending)
	}
	if c.QueueMaxQueues < 0 {
		bad("QUEUE_MAX_QUEUES", "%d must not be negative", c.QueueMaxQueues)
	}
	durations := []struct {
		env string
		v   time.Duration
		min time.Duration
	}{
		{"PROMETHEUS_QUEUE_POLL_INTERVAL", c.PrometheusQueuePollInterval, 100 * time.Millisecond},
		{"PENALTY_DECAY", c.PenaltyDecay, time.Millisecond},
		{"BAN_SECONDS", c.BanDuration, time.Second},
		{"RATE_LIMIT_BACKEND_TIMEOUT", c.BackendTimeout, time.Millisecond},
		{"TICK_INTERVAL", c.TickInterval, 10 * time.Millisecond},
		{"JOB_LEASE", c.JobLease, 100 * time.Millisecond},
		{"JOB_RETRY_BASE", c.JobRetryBase, queue.MinBackoffBase},
		{"JOB_TIMEOUT", c.JobTimeout, queue.MinJobTimeout},
		{"SHUTDOWN_TIMEOUT", c.ShutdownTimeout, 0},
		{"SHUTDOWN_DELAY", c.ShutdownDelay, 0},
	}
	for _, d := range durations {
		if d.v < d.min {
			bad(d.env, "%s must be at least %s", d.v, d.min)
		}
	}
	if c.JobRetryMax > MaxJobRetryMax {
		bad("JOB_RETRY_MAX", "%s must be at most %s: a longer cap holds a failing job in the retry set for weeks", c.JobRetryMax, MaxJobRetryMax)
	} else if c.JobRetryMax < c.JobRetryBase && c.JobRetryBase >= time.Millisecond {
		bad("JOB_RETRY_MAX", "%s must be at least %s (%s)", c.JobRetryMax, c.SettingName("JOB_RETRY_BASE"), c.JobRetryBase)
	}
	if c.JobTimeout > queue.MaxJobTimeout {
		bad("JOB_TIMEOUT", "%s must be at most %s", c.JobTimeout, queue.MaxJobTimeout)
	}
	if c.JobIdempotencyTTL < queue.MinIdempotencyTTL || c.JobIdempotencyTTL > queue.MaxIdempotencyTTL {
		bad("JOB_IDEMPOTENCY_TTL", "%s must be between %s and %s", c.JobIdempotencyTTL, queue.MinIdempotencyTTL, queue.MaxIdempotencyTTL)
	}
	if n := len(c.JobWebhookSecret); n > 0 && n < MinWebhookSecret {
		bad("JOB_WEBHOOK_SECRET", "is %d bytes; want at least %d (the value is not shown)", n, MinWebhookSecret)
	}
	if c.QueueMaxAge < 0 {
		bad("QUEUE_MAX_AGE_SECONDS", "%s must not be negative", c.QueueMaxAge)
	}
	if !oneOf(c.OnBackendError, backendErrorPolicies...) {
		bad("RATE_LIMIT_ON_BACKEND_ERROR", "%q must be local, allow or deny", c.OnBackendError)
	}
	if !oneOf(c.RedisCluster, clusterModes...) {
		bad("REDIS_CLUSTER", "%q must be auto, true or false", c.RedisCluster)
	}
	if !oneOf(c.LogFormat, logFormats...) {
		bad("LOG_FORMAT", "%q must be text or json", c.LogFormat)
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		bad("LOG_LEVEL", "%q must be debug, info, warn or error", c.LogLevel)
	}
	for _, t := range []struct{ env, value string }{
		{"REFRAKT_DEVELOPER_TOKEN", c.DeveloperToken},
		{"REFRAKT_OPERATOR_TOKEN", c.OperatorToken},
		{"PROMETHEUS_BEARER_TOKEN", c.PrometheusBearerToken},
	} {
		if why := unpresentable(t.value); why != "" {
			bad(t.env, "%s: choose another (the value is not shown)", why)
		}
	}
	if c.DeveloperToken != "" && c.DeveloperToken == c.OperatorToken {
		bad("REFRAKT_OPERATOR_TOKEN", "must differ from %s", c.SettingName("REFRAKT_DEVELOPER_TOKEN"))
	}
	if len(errs) > 0 {
		return &Error{Msg: strings.Join(errs, "; ")}
	}
	return nil
}

// unpresentable says why a token is refused, "" when it is taken: it must
// be UTF-8 text; it must hold no control character (most C0 controls cannot
// go in a header field at all, and the rest, tab, DEL and C1, which a
// header may carry, are no text anyone means to type or paste); and bearer
// trims white space around a presented token. It never names the value.
func unpresentable(tok string) string {
	switch {
	case !utf8.ValidString(tok):
		return "is not valid UTF-8, so no request could ever present it"
	case strings.IndexFunc(tok, unicode.IsControl) >= 0:
		return "holds a control character"
	case strings.TrimSpace(tok) != tok:
		return "begins or ends with white space, which the daemon trims from a presented token, so no request could ever present it"
	}
	return ""
}

// The words the enumerated settings take: LOG_LEVEL, LOG_FORMAT,
// REDIS_CLUSTER (besides the true/false words) and
// RATE_LIMIT_ON_BACKEND_ERROR.
var (
	logLevels            = []string{"debug", "info", "warn", "error"}
	logFormats           = []string{"text", "json"}
	clusterModes         = []string{"auto", "true", "false"}
	backendErrorPolicies = []string{"local", "allow", "deny"}
	workerQueueOrders    = []string{queue.OrderWeighted, queue.OrderStrict}
)

// ParseLevel turns debug|info|warn|error, in any case, into a slog level.
// slog's own parser also takes offsets (info+2, error+100: the last
// silences every line), which README does not document: refused.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q must be debug, info, warn or error", s)
}

// LogValue is every setting, for the start-up line: backend (memory or
// redis), then each setting under its flag's name with _ for -
// (shutdown_timeout), but for the two keys the line had before it showed
// every setting (logKeys). Secrets stay out (Setting.value): a token is set
// or unset, a Redis URL shows no password.
func (c Config) LogValue() slog.Value {
	backend := "memory"
	if c.RedisURL != "" {
		backend = "redis"
	}
	attrs := []slog.Attr{slog.String("backend", backend)}
	for _, s := range Settings() {
		key, ok := logKeys[s.Flag]
		if !ok {
			key = strings.ReplaceAll(s.Flag, "-", "_")
		}
		attrs = append(attrs, slog.Attr{Key: key, Value: s.value(&c)})
	}
	return slog.GroupValue(attrs...)
}

// logKeys are the keys of the start-up line that are not their setting's
// flag: kept as they were, for whoever greps them.
var logKeys = map[string]string{"rate-limit-enabled": "rate_limit", "prometheus-enabled": "prometheus"}

// Error is a configuration error; the CLI turns it into exit code 2.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}

// cleanPath reports whether p is as path.Clean leaves it, but for a
// trailing slash (a subtree): net/http's ServeMux refuses, with a panic,
// a route whose path is not clean.
func cleanPath(p string) bool {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}
