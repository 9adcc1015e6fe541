package config

import (
	"cmp"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// Setting is one configuration value: its environment variable, its flag of
// `serve`, its help text, its default as text, and how to store a value.
type Setting struct {
	Env     string
	Flag    string
	Usage   string
	Default string
	// Kind names the value's type in the flag's help ("int", "duration");
	// empty for text. A "bool" flag may be given without a value
	// (--rate-limit-enabled).
	Kind string
	set  func(c *Config, v string) error
	// value is what the log shows of the setting (Config.LogValue): a
	// token as set or unset, a URL without its password.
	value func(c *Config) slog.Value
	// secretIn reports whether a value of the setting holds a secret (a
	// token, a URL's password); nil for a setting that never does.
	secretIn func(v string) bool
	// namesEntry says the setting's parse errors name the entry at fault,
	// so the whole value (up to 64 entries) is not repeated before it.
	namesEntry bool
}

// CarriesSecret reports whether v, a value of s, holds a secret: a token,
// or a URL with a password. Given as a flag, it is in the command line,
// which ps shows to every user of the machine; `serve` warns of it.
func (s Setting) CarriesSecret(v string) bool {
	return s.secretIn != nil && s.secretIn(v)
}

// psAdvice ends the help of a setting that may hold a secret.
const psAdvice = "; as a flag it shows in ps to every local user: prefer the env var"

// Settings lists every setting in the order `serve --help` shows them.
func Settings() []Setting {
	d := Default()
	return []Setting{
		str("REFRAKT_ADDR", "addr", "HTTP listen address (port 0 picks a free one)", d.Addr, func(c *Config) *string { return &c.Addr }),
		redactedURL("QUEUE_URL", "redis", "Redis URL (redis://host:port/db); empty = embedded memory backend; a password in it, given as a flag, shows in ps to every local user: prefer the env var", d.RedisURL, func(c *Config) *string { return &c.RedisURL }),
		str("REFRAKT_PREFIX", "prefix", "prefix of every Redis key", d.Prefix, func(c *Config) *string { return &c.Prefix }),
		word("REDIS_CLUSTER", "redis-cluster", "auto (detect cluster_enabled:1), true or false", d.RedisCluster, clusterModes, boolWords, func(c *Config) *string { return &c.RedisCluster }),
		{Env: "TRUSTED_PROXIES", Flag: "trusted-proxies", Usage: "comma-separated CIDRs whose identity headers are trusted (none: no peer)", Default: "127.0.0.0/8,::1/128",
			set:   func(c *Config, v string) error { p, err := parsePrefixes(v); c.TrustedProxies = p; return err },
			value: func(c *Config) slog.Value { return slog.StringValue(ShowPrefixes(c.TrustedProxies)) }},
		integer("REFRAKT_MAX_IN_FLIGHT", "max-in-flight", "concurrent requests served at once; beyond it 503 (health checks excepted; requests with a valid developer, operator or metrics token have their own reserve, a sixteenth, at least 16)", d.MaxInFlight, func(c *Config) *int { return &c.MaxInFlight }),
		{Env: "CLIENT_IP_HEADER", Flag: "client-ip-header", Usage: "header a trusted proxy sets to the client IP (none: X-Forwarded-For alone)", Default: d.ClientIPHeader,
			set:   func(c *Config, v string) error { c.ClientIPHeader = clientIPHeader(v); return nil },
			value: func(c *Config) slog.Value { return slog.StringValue(cmp.Or(c.ClientIPHeader, "none")) }},

		boolean("PROMETHEUS_ENABLED", "prometheus-enabled", "serve Prometheus metrics", d.PrometheusEnabled, func(c *Config) *bool { return &c.PrometheusEnabled }),
		str("PROMETHEUS_METRICS_ROUTE", "prometheus-route", "path of the metrics endpoint", d.PrometheusRoute, func(c *Config) *string { return &c.PrometheusRoute }),
		secret("PROMETHEUS_BEARER_TOKEN", "prometheus-token", "bearer token required to scrape (empty = open)", func(c *Config) *string { return &c.PrometheusBearerToken }),
		seconds("PROMETHEUS_QUEUE_POLL_INTERVAL", "prometheus-poll-interval", "how often queue gauges are sampled", d.PrometheusQueuePollInterval, func(c *Config) *time.Duration { return &c.PrometheusQueuePollInterval }),

		boolean("RATE_LIMIT_ENABLED", "rate-limit-enabled", "apply rate limits", d.RateLimitEnabled, func(c *Config) *bool { return &c.RateLimitEnabled }),
		integer("RATE_LIMIT_RUN_BURST", "rate-limit-run-burst", "bucket capacity of the run limit", d.RunBurst, func(c *Config) *int { return &c.RunBurst }),
		integer("RATE_LIMIT_RUN_PER_MINUTE", "rate-limit-run-per-minute", "run requests refilled per 60s", d.RunPerMinute, func(c *Config) *int { return &c.RunPerMinute }),
		integer("RATE_LIMIT_ASSISTANT_PER_MINUTE", "rate-limit-assistant-per-minute", "assistant requests per 60s", d.AssistantPerMinute, func(c *Config) *int { return &c.AssistantPerMinute }),
		number("RATE_LIMIT_PREMIUM_MULTIPLIER", "rate-limit-premium-multiplier", "burst and rate multiplier of the premium tier", d.PremiumMultiplier, func(c *Config) *float64 { return &c.PremiumMultiplier }),
		number("PENALTY_FACTOR", "penalty-factor", "capacity multiplier per strike, in (0, 1]", d.PenaltyFactor, func(c *Config) *float64 { return &c.PenaltyFactor }),
		duration("PENALTY_DECAY", "penalty-decay", "one strike decays per this long without a 429", d.PenaltyDecay, func(c *Config) *time.Duration { return &c.PenaltyDecay }),
		integer("BAN_AFTER_STRIKES", "ban-after-strikes", "strikes that ban a key", d.BanAfterStrikes, func(c *Config) *int { return &c.BanAfterStrikes }),
		seconds("BAN_SECONDS", "ban-seconds", "first ban's length (doubles per repeat within an hour of the previous ban's end, at most 1h)", d.BanDuration, func(c *Config) *time.Duration { return &c.BanDuration }),
		word("RATE_LIMIT_ON_BACKEND_ERROR", "rate-limit-on-backend-error", "local, allow or deny when Redis fails", d.OnBackendError, backendErrorPolicies, nil, func(c *Config) *string { return &c.OnBackendError }),
		duration("RATE_LIMIT_BACKEND_TIMEOUT", "rate-limit-backend-timeout", "timeout of each limiter call to Redis", d.BackendTimeout, func(c *Config) *time.Duration { return &c.BackendTimeout }),
		{Env: "RATE_LIMITS", Flag: "rate-limits", Usage: "limits of your own, decided for your proxy by GET /api/check/NAME: entries NAME=RATE/WINDOW [burst=N] [scopes=S1,S2] separated by ';' (scopes ip, user, tenant, user_tenant; default burst=RATE scopes=ip), e.g. \"api=100/1m burst=200 scopes=ip,user\"", Default: "",
			set:        func(c *Config, v string) (err error) { c.RateLimits, err = ratelimit.ParseLimits(v); return err },
			value:      func(c *Config) slog.Value { return slog.StringValue(ratelimit.FormatLimits(c.RateLimits)) },
			namesEntry: true},

		integer("QUEUE_MAX_PENDING", "queue-max-pending", "refuse /run above this many pending jobs (0 = off)", d.QueueMaxPending, func(c *Config) *int { return &c.QueueMaxPending }),
		seconds("QUEUE_MAX_AGE_SECONDS", "queue-max-age", "refuse /run when the oldest pending job is older (0 = off)", d.QueueMaxAge, func(c *Config) *time.Duration { return &c.QueueMaxAge }),
		integer("QUEUE_MAX_QUEUES", "queue-max-queues", "refuse /run jobs for a new queue beyond this many queues (0 = no bound)", d.QueueMaxQueues, func(c *Config) *int { return &c.QueueMaxQueues }),
		integer("WORKER_CONCURRENCY", "workers", "worker goroutines (0 = manual mode)", d.WorkerConcurrency, func(c *Config) *int { return &c.WorkerConcurrency }),
		{Env: "WORKER_QUEUES", Flag: "worker-queues", Usage: "the queues this daemon's workers take jobs from: comma-separated NAME[=WEIGHT] (weight 1-1000, default 1; at most 100), e.g. critical=6,default=3,low=1 or emails,reports; empty = every queue, round-robin", Default: "",
			set: func(c *Config, v string) (err error) {
				c.WorkerQueues, err = queue.ParseWorkerQueues(v)
				c.workerWeightsGiven = strings.Contains(v, "=") // a name holds no =
				return err
			},
			value:      func(c *Config) slog.Value { return slog.StringValue(queue.FormatWorkerQueues(c.WorkerQueues)) },
			namesEntry: true},
		word("WORKER_QUEUE_ORDER", "worker-queue-order", "how each fetch visits WORKER_QUEUES: weighted (a random order, a queue first with the chance weight/sum) or strict (the listed order; no weights)", d.WorkerQueueOrder, workerQueueOrders, nil, func(c *Config) *string { return &c.WorkerQueueOrder }),
		seconds("TICK_INTERVAL", "tick-interval", "how often due scheduled and retry jobs are promoted", d.TickInterval, func(c *Config) *time.Duration { return &c.TickInterval }),
		integer("JOB_HISTORY", "job-history", "succeeded and cancelled jobs kept per queue, and as many dead jobs", d.JobHistory, func(c *Config) *int { return &c.JobHistory }),
		duration("JOB_LEASE", "job-lease", "lease of a running job, extended while it runs", d.JobLease, func(c *Config) *time.Duration { return &c.JobLease }),
		duration("JOB_RETRY_BASE", "job-retry-base", "delay before a failed job's first retry, doubled per retry up to JOB_RETRY_MAX, ±20% jitter (at least 1ms)", d.JobRetryBase, func(c *Config) *time.Duration { return &c.JobRetryBase }),
		duration("JOB_RETRY_MAX", "job-retry-max", "longest delay before a retry (at least JOB_RETRY_BASE, at most 168h)", d.JobRetryMax, func(c *Config) *time.Duration { return &c.JobRetryMax }),
		duration("JOB_TIMEOUT", "job-timeout", "longest run of a job's handler when the job names no timeout_ms: then its context is cancelled and the attempt fails (at least 1ms, at most 168h)", d.JobTimeout, func(c *Config) *time.Duration { return &c.JobTimeout }),
		duration("JOB_IDEMPOTENCY_TTL", "job-idempotency-ttl", "how long an enqueue's idempotency key is kept: the same request again answers its job (1s to 720h)", d.JobIdempotencyTTL, func(c *Config) *time.Duration { return &c.JobIdempotencyTTL }),
		{Env: "JOB_WEBHOOKS", Flag: "job-webhooks", Usage: "job types run by your service over HTTP: comma-separated TYPE=URL pairs (absolute http or https URLs, no user info); each job of TYPE is POSTed to URL, the answer its outcome; a URL's query may hold a key" + psAdvice, Default: "",
			set:   func(c *Config, v string) (err error) { c.JobWebhooks, err = parseWebhooks(v); return err },
			value: func(c *Config) slog.Value { return slog.StringValue(webhookTypes(c.JobWebhooks)) },
			// Any URL may carry a key in its path or query (rvhook38 L6).
			secretIn: func(v string) bool { return strings.TrimSpace(v) != "" }},
		secret("JOB_WEBHOOK_SECRET", "job-webhook-secret", "signs every webhook delivery (Refrakt-Signature, HMAC-SHA256) when set; at least 16 bytes", func(c *Config) *string { return &c.JobWebhookSecret }),
		duration("SHUTDOWN_TIMEOUT", "shutdown-timeout", "how long graceful shutdown may take", d.ShutdownTimeout, func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
		duration("SHUTDOWN_DELAY", "shutdown-delay", "after a stop signal, serve on this long with /readyz answering 503 before the stop begins (0 = none)", d.ShutdownDelay, func(c *Config) *time.Duration { return &c.ShutdownDelay }),

		secret("REFRAKT_DEVELOPER_TOKEN", "developer-token", "developer bearer token (generated into the state dir when empty)", func(c *Config) *string { return &c.DeveloperToken }),
		secret("REFRAKT_OPERATOR_TOKEN", "operator-token", "operator bearer token (empty = no operator role)", func(c *Config) *string { return &c.OperatorToken }),
		word("LOG_FORMAT", "log-format", "text or json", d.LogFormat, logFormats, nil, func(c *Config) *string { return &c.LogFormat }),
		word("LOG_LEVEL", "log-level", "debug, info, warn or error", d.LogLevel, logLevels, nil, func(c *Config) *string { return &c.LogLevel }),
	}
}

// Load builds a Config from the defaults, then environment variables, then
// flags (flagValues holds only the flags given, by flag name), and validates
// it. The error names the setting as it was given (its flag, or its
// variable: SettingName) and what it accepts.
func Load(getenv func(string) string, flagValues map[string]string) (Config, error) {
	c := Default()
	c.flagged = map[string]string{}
	for _, s := range Settings() {
		v, given := flagValues[s.Flag]
		if given {
			c.flagged[s.Env] = "--" + s.Flag
		} else if v = Lookup(getenv, s.Env); v == "" {
			continue
		}
		if err := s.set(&c, strings.TrimSpace(v)); err != nil {
			if s.CarriesSecret(v) || s.namesEntry { // a value holding a secret is never quoted
				return c, &Error{Msg: fmt.Sprintf("%s: %v", c.SettingName(s.Env), err)}
			}
			return c, &Error{Msg: fmt.Sprintf("%s: %q %v", c.SettingName(s.Env), v, err)}
		}
	}
	return c, c.Validate()
}

// Lookup reads the environment variable name through getenv, without the
// blanks around it: a variable that is empty or blank is an unset one, for
// the daemon's settings and the CLI's alike.
func Lookup(getenv func(string) string, name string) string {
	return strings.TrimSpace(getenv(name))
}

func str(env, flag, usage, def string, field func(*Config) *string) Setting {
	return Setting{Env: env, Flag: flag, Usage: usage, Default: def,
		set:   func(c *Config, v string) error { *field(c) = v; return nil },
		value: textValue(field)}
}

// textValue shows a text setting as it is.
func textValue(field func(*Config) *string) func(*Config) slog.Value {
	return func(c *Config) slog.Value { return slog.StringValue(*field(c)) }
}

// secret is a text setting the log shows as set or unset: never its value,
// nor its length.
func secret(env, flag, usage string, field func(*Config) *string) Setting {
	s := str(env, flag, usage+psAdvice, "", field)
	s.secretIn = func(v string) bool { return v != "" }
	s.value = func(c *Config) slog.Value {
		if *field(c) == "" {
			return slog.StringValue("unset")
		}
		return slog.StringValue("set")
	}
	return s
}

// redactedURL is a URL setting the log shows without its password
// (RedactURL).
func redactedURL(env, flag, usage, def string, field func(*Config) *string) Setting {
	s := str(env, flag, usage, def, field)
	s.value = func(c *Config) slog.Value { return slog.StringValue(RedactURL(*field(c))) }
	s.secretIn = HasPassword
	return s
}

// word is a setting that takes one of words, in any case, and stores it in
// lower case (or the word an alias stands for). Another value is stored as
// given, for Validate to refuse with the accepted words.
func word(env, flag, usage, def string, words []string, aliases map[string]string, field func(*Config) *string) Setting {
	return Setting{Env: env, Flag: flag, Usage: usage, Default: def,
		set: func(c *Config, v string) error {
			w := strings.ToLower(v)
			if a, ok := aliases[w]; ok {
				w = a
			}
			if slices.Contains(words, w) {
				v = w
			}
			*field(c) = v
			return nil
		},
		value: textValue(field)}
}

// boolWords are the words a boolean setting takes besides true and false
// (in any case), and what they stand for.
var boolWords = map[string]string{"1": "true", "0": "false"}

// parseBool takes true or false in any case, or 1 or 0: not strconv's t, f
// nor other spellings, so that what is accepted is what README says.
func parseBool(v string) (bool, bool) {
	w := strings.ToLower(v)
	if a, ok := boolWords[w]; ok {
		w = a
	}
	switch w {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

func integer(env, flag, usage string, def int, field func(*Config) *int) Setting {
	return Setting{Env: env, Flag: flag, Usage: usage, Default: strconv.Itoa(def), Kind: "int",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("is not a whole number")
			}
			*field(c) = n
			return nil
		},
		value: func(c *Config) slog.Value { return slog.IntValue(*field(c)) }}
}

func number(env, flag, usage string, def float64, field func(*Config) *float64) Setting {
	return Setting{Env: env, Flag: flag, Usage: usage, Default: strconv.FormatFloat(def, 'g', -1, 64), Kind: "float",
		set: func(c *Config, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f != f {
				return fmt.Errorf("is not a number")
			}
			*field(c) = f
			return nil
		},
		value: func(c *Config) slog.Value { return slog.Float64Value(*field(c)) }}
}

func boolean(env, flag, usage string, def bool, field func(*Config) *bool) Setting {
	return Setting{Env: env, Flag: flag, Usage: usage, Default: strconv.FormatBool(def), Kind: "bool",
		set: func(c *Config, v string) error {
			b, ok := parseBool(v)
			if !ok {
				return fmt.Errorf("is not true or false")
			}
			*field(c) = b
			return nil
		},
		value: func(c *Config) slog.Value { return slog.BoolValue(*field(c)) }}
}

// duration takes Go syntax only ("100ms", "30s"): a bare number is ambiguous
// for settings whose name does not say seconds.
func duration(env, flag, usage string, def time.Duration, field func(*Config) *time.Duration) Setting {
	return Setting{Env: env, Flag: flag, Usage: usage, Default: def.String(), Kind: "duration",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				// A number without a unit is told to add one, where the
				// number with one is a duration (not 1e9 nor NaN).
				if _, uerr := time.ParseDuration(v + "s"); uerr == nil {
					return fmt.Errorf("needs a unit, e.g. %ss", v)
				}
				return fmt.Errorf("is not a duration (e.g. 250ms, 30s, 5m)")
			}
			*field(c) = d
			return nil
		},
		value: durationValue(field)}
}

// seconds takes Go syntax or plain (possibly fractional) seconds, for the
// *_SECONDS and *_INTERVAL settings whose names promise seconds.
func seconds(env, flag, usage string, def time.Duration, field func(*Config) *time.Duration) Setting {
	return Setting{Env: env, Flag: flag, Usage: usage, Default: def.String(), Kind: "duration",
		set: func(c *Config, v string) error {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				// NaN passes every comparison and became the least
				// Duration; an infinity is no number of seconds either.
				if math.IsNaN(f) || math.IsInf(f, 0) {
					return fmt.Errorf("is not a number of seconds or a duration (e.g. 30, 30s, 5m)")
				}
				// Past 1e9 either way the conversion would overflow. A
				// negative number within it is kept: Validate then says the
				// setting's own range, as it does for "-5s" ("must not be
				// negative", "must be at least 1s"), where "is out of range"
				// said none.
				if f < -1e9 {
					return fmt.Errorf("must not be negative")
				}
				if f > 1e9 {
					return fmt.Errorf("must be at most 1e9 seconds (about 31 years)")
				}
				*field(c) = time.Duration(f * float64(time.Second))
				return nil
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("is not a number of seconds or a duration (e.g. 30, 30s, 5m)")
			}
			*field(c) = d
			return nil
		},
		value: durationValue(field)}
}

// durationValue shows a duration as the settings take it ("1m30s"), in
// JSON logs too, where slog would write nanoseconds.
func durationValue(field func(*Config) *time.Duration) func(*Config) slog.Value {
	return func(c *Config) slog.Value { return slog.StringValue(field(c).String()) }
}

// ShowPrefixes is the text of a TRUSTED_PROXIES list (or a part of one), "none" when it holds
// no range.
func ShowPrefixes(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "none"
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ",")
}

// isNone reports whether a setting's value is the word none, which says
// "nothing" where an empty variable cannot (it is an unset one).
func isNone(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "none") }

// clientIPHeader reads CLIENT_IP_HEADER: none is no header (the client's
// address is read from X-Forwarded-For alone), as an empty value cannot
// say, since an empty variable is an unset one.
func clientIPHeader(v string) string {
	if isNone(v) {
		return ""
	}
	return v
}

// parsePrefixes reads a TRUSTED_PROXIES list: none is the empty list, a
// value that lists no range is nil (Config.TrustedProxies). Peers are
// matched unmapped (an IPv4 peer of a dual-stack listener is its IPv4
// address), so an IPv4-mapped entry (::ffff:10.0.0.1, ::ffff:10.0.0.0/104)
// is taken as the IPv4 one it stands for: kept mapped, it never matched. An
// entry with a zone (fe80::1%eth0) is refused: a zoned peer matches no
// range, and a range ignoring the zone would trust every link's.
func parsePrefixes(v string) ([]netip.Prefix, error) {
	if isNone(v) {
		return []netip.Prefix{}, nil // trust no peer's headers
	}
	var out []netip.Prefix
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if strings.Contains(part, "%") {
			return nil, fmt.Errorf("has %q, an address with a zone: a peer's zone is never matched, so trust the proxy by an address without one", part)
		}
		if !strings.Contains(part, "/") {
			a, err := netip.ParseAddr(part)
			if err != nil {
				return nil, fmt.Errorf("has %q, which is not a CIDR or IP address", part)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("has %q, which is not a CIDR (e.g. 10.0.0.0/8)", part)
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("has %q, an IPv4-mapped range shorter than /96, which covers more than IPv4-mapped addresses: write the IPv4 range, or an IPv6 one", part)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// CoveringAll returns, for each of IPv4 and IPv6 whose every address the
// ranges ps cover together (0.0.0.0/0, or 0.0.0.0/1 and 128.0.0.0/1), the
// ranges of that family: a TRUSTED_PROXIES of them trusts every client.
func CoveringAll(ps []netip.Prefix) [][]netip.Prefix {
	var out [][]netip.Prefix
	for _, is4 := range []bool{true, false} {
		var fam []netip.Prefix
		for _, p := range ps {
			if p.Addr().Is4() == is4 {
				fam = append(fam, p.Masked())
			}
		}
		if coversFamily(fam, is4) {
			out = append(out, fam)
		}
	}
	return out
}

// coversFamily reports whether the ranges fam, all of one family, cover
// every address of it: sorted by first address, each must start at or
// before the first address not yet covered.
func coversFamily(fam []netip.Prefix, is4 bool) bool {
	if len(fam) == 0 {
		return false
	}
	fam = slices.Clone(fam)
	slices.SortFunc(fam, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	next := netip.IPv6Unspecified()
	if is4 {
		next = netip.IPv4Unspecified()
	}
	for _, p := range fam {
		if next.Less(p.Addr()) {
			return false // a gap before p
		}
		last := lastAddr(p)
		if !last.Less(next) {
			next = last.Next()
			if !next.IsValid() {
				return true // the family's last address is covered
			}
		}
	}
	return false
}

// lastAddr is the last address of the masked range p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
