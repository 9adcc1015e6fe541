package config

import (
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/refrakt/refrakt/internal/core/queue"
	"github.com/refrakt/refrakt/internal/core/queue/webhook"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// manyQueues is a WORKER_QUEUES value of n distinct queues.
func manyQueues(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = "q" + strconv.Itoa(i)
	}
	return strings.Join(names, ",")
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadGood(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		flags map[string]string
		check func(Config) any
		want  any
	}{
		{"defaults", nil, nil, func(c Config) any { return []any{c.Addr, c.WorkerConcurrency, c.JobLease, c.OnBackendError} }, []any{":8080", 4, 30 * time.Second, "local"}},
		{"env sets", map[string]string{"WORKER_CONCURRENCY": "7"}, nil, func(c Config) any { return c.WorkerConcurrency }, 7},
		{"flag beats env", map[string]string{"WORKER_CONCURRENCY": "7"}, map[string]string{"workers": "2"}, func(c Config) any { return c.WorkerConcurrency }, 2},
		{"flag zero beats env", map[string]string{"WORKER_CONCURRENCY": "7"}, map[string]string{"workers": "0"}, func(c Config) any { return c.WorkerConcurrency }, 0},
		{"plain seconds", map[string]string{"QUEUE_MAX_AGE_SECONDS": "2.5"}, nil, func(c Config) any { return c.QueueMaxAge }, 2500 * time.Millisecond},
		{"go duration for seconds setting", map[string]string{"TICK_INTERVAL": "250ms"}, nil, func(c Config) any { return c.TickInterval }, 250 * time.Millisecond},
		{"go duration", map[string]string{"JOB_LEASE": "1m"}, nil, func(c Config) any { return c.JobLease }, time.Minute},
		{"bool", map[string]string{"RATE_LIMIT_ENABLED": "false"}, nil, func(c Config) any { return c.RateLimitEnabled }, false},
		{"cidrs and bare ip", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1"}, nil,
			func(c Config) any { return c.TrustedProxies },
			[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")}},
		{"trust no proxy", map[string]string{"TRUSTED_PROXIES": "none"}, nil, func(c Config) any { return c.TrustedProxies }, []netip.Prefix{}},
		// Review sec28 LOW 8: a proxy that only appends X-Forwarded-For
		// passes a client's own CF-Connecting-IP through; an empty variable
		// is an unset one, so none is how to read X-Forwarded-For alone.
		{"no client IP header", map[string]string{"CLIENT_IP_HEADER": "None"}, nil, func(c Config) any { return c.ClientIPHeader }, ""},
		{"no client IP header by flag", nil, map[string]string{"client-ip-header": "none"}, func(c Config) any { return c.ClientIPHeader }, ""},
		{"another client IP header", map[string]string{"CLIENT_IP_HEADER": "True-Client-IP"}, nil, func(c Config) any { return c.ClientIPHeader }, "True-Client-IP"},
		// A variable of blanks alone is an unset one, as an empty one is:
		// TRUSTED_PROXIES=' ' dropped loopback from the trusted peers.
		{"blank variable keeps the default", map[string]string{"TRUSTED_PROXIES": " ", "WORKER_CONCURRENCY": "\t"}, nil,
			func(c Config) any { return []any{c.TrustedProxies, c.WorkerConcurrency} }, []any{Default().TrustedProxies, 4}},
		{"shutdown delay of an hour", map[string]string{"SHUTDOWN_DELAY": "1h"}, nil, func(c Config) any { return c.ShutdownDelay }, time.Hour},
		// Review lifecycle #10: every enumerated setting takes its words in
		// any case, stored as the word; REDIS_CLUSTER also 1 and 0, as the
		// booleans do.
		{"level in capitals", map[string]string{"LOG_LEVEL": "DEBUG"}, nil, func(c Config) any { return c.LogLevel }, "debug"},
		{"level capitalised", nil, map[string]string{"log-level": "Warn"}, func(c Config) any { return c.LogLevel }, "warn"},
		{"format in capitals", map[string]string{"LOG_FORMAT": "JSON"}, nil, func(c Config) any { return c.LogFormat }, "json"},
		{"cluster in capitals", map[string]string{"REDIS_CLUSTER": "TRUE"}, nil, func(c Config) any { return c.RedisCluster }, "true"},
		{"cluster auto capitalised", map[string]string{"REDIS_CLUSTER": "Auto"}, nil, func(c Config) any { return c.RedisCluster }, "auto"},
		{"cluster 1", map[string]string{"REDIS_CLUSTER": "1"}, nil, func(c Config) any { return c.RedisCluster }, "true"},
		{"cluster 0", nil, map[string]string{"redis-cluster": "0"}, func(c Config) any { return c.RedisCluster }, "false"},
		{"on backend error capitalised", map[string]string{"RATE_LIMIT_ON_BACKEND_ERROR": "Deny"}, nil, func(c Config) any { return c.OnBackendError }, "deny"},
		{"bool in mixed case", map[string]string{"RATE_LIMIT_ENABLED": "fAlSe"}, nil, func(c Config) any { return c.RateLimitEnabled }, false},
		{"bool 0", map[string]string{"PROMETHEUS_ENABLED": "0"}, nil, func(c Config) any { return c.PrometheusEnabled }, false},
		{"bool 1", nil, map[string]string{"rate-limit-enabled": "1"}, func(c Config) any { return c.RateLimitEnabled }, true},
		{"redis url", nil, map[string]string{"redis": "redis://127.0.0.1:6379/2"}, func(c Config) any { return c.RedisURL }, "redis://127.0.0.1:6379/2"},
		// The retry backoff of DESIGN §4: base 100ms, cap 1h, by default;
		// an operator sets both (backoff36).
		{"retry backoff defaults", nil, nil, func(c Config) any { return []any{c.JobRetryBase, c.JobRetryMax} }, []any{100 * time.Millisecond, time.Hour}},
		{"retry backoff by env", map[string]string{"JOB_RETRY_BASE": "2s", "JOB_RETRY_MAX": "10m"}, nil,
			func(c Config) any { return []any{c.JobRetryBase, c.JobRetryMax} }, []any{2 * time.Second, 10 * time.Minute}},
		{"retry backoff flags beat env", map[string]string{"JOB_RETRY_BASE": "2s", "JOB_RETRY_MAX": "10m"}, map[string]string{"job-retry-base": "1ms", "job-retry-max": "168h"},
			func(c Config) any { return []any{c.JobRetryBase, c.JobRetryMax} }, []any{time.Millisecond, 168 * time.Hour}},
		// timeout37: every job's run has a bound, 30m unless set.
		{"job timeout default", nil, nil, func(c Config) any { return c.JobTimeout }, 30 * time.Minute},
		{"job timeout by env", map[string]string{"JOB_TIMEOUT": "90s"}, nil, func(c Config) any { return c.JobTimeout }, 90 * time.Second},
		{"job timeout flag beats env", map[string]string{"JOB_TIMEOUT": "90s"}, map[string]string{"job-timeout": "1ms"}, func(c Config) any { return c.JobTimeout }, time.Millisecond},
		{"job timeout at its most", nil, map[string]string{"job-timeout": "168h"}, func(c Config) any { return c.JobTimeout }, 168 * time.Hour},
		{"retry cap equal to the base", map[string]string{"JOB_RETRY_BASE": "5s", "JOB_RETRY_MAX": "5s"}, nil,
			func(c Config) any { return []any{c.JobRetryBase, c.JobRetryMax} }, []any{5 * time.Second, 5 * time.Second}},
		// idem37: how long an idempotency key is kept.
		// hook38: JOB_WEBHOOKS and JOB_WEBHOOK_SECRET.
		{"webhooks default none", nil, nil, func(c Config) any { return c.JobWebhooks }, []webhook.Target(nil)},
		{"webhooks by env", map[string]string{"JOB_WEBHOOKS": " email.send=http://127.0.0.1:9000/jobs/email , report=https://svc.internal/jobs/report?x=1"}, nil,
			func(c Config) any { return c.JobWebhooks },
			[]webhook.Target{{Type: "email.send", URL: "http://127.0.0.1:9000/jobs/email"}, {Type: "report", URL: "https://svc.internal/jobs/report?x=1"}}},
		{"webhooks flag beats env", map[string]string{"JOB_WEBHOOKS": "a=http://h/a"}, map[string]string{"job-webhooks": "b=http://[::1]:9/b"},
			func(c Config) any { return c.JobWebhooks }, []webhook.Target{{Type: "b", URL: "http://[::1]:9/b"}}},
		// rvhook38 L7: blank means none, as for the other settings; an
		// empty pair (a trailing comma, two commas) is ignored.
		{"webhooks empty flag is none", map[string]string{"JOB_WEBHOOKS": "a=http://h/a"}, map[string]string{"job-webhooks": ""},
			func(c Config) any { return c.JobWebhooks }, []webhook.Target(nil)},
		{"webhooks trailing and double comma", map[string]string{"JOB_WEBHOOKS": "a=http://h/a,,b=http://h/b?ids=1%2C2, "}, nil,
			func(c Config) any { return c.JobWebhooks }, []webhook.Target{{Type: "a", URL: "http://h/a"}, {Type: "b", URL: "http://h/b?ids=1%2C2"}}},
		{"webhook port 65535", map[string]string{"JOB_WEBHOOKS": "a=http://h:65535/a"}, nil,
			func(c Config) any { return c.JobWebhooks }, []webhook.Target{{Type: "a", URL: "http://h:65535/a"}}},
		{"webhook secret by env", map[string]string{"JOB_WEBHOOK_SECRET": "0123456789abcdef"}, nil, func(c Config) any { return c.JobWebhookSecret }, "0123456789abcdef"},
		{"idempotency ttl default", nil, nil, func(c Config) any { return c.JobIdempotencyTTL }, 24 * time.Hour},
		{"idempotency ttl by env", map[string]string{"JOB_IDEMPOTENCY_TTL": "1s"}, nil, func(c Config) any { return c.JobIdempotencyTTL }, time.Second},
		{"idempotency ttl flag beats env", map[string]string{"JOB_IDEMPOTENCY_TTL": "1h"}, map[string]string{"job-idempotency-ttl": "720h"},
			func(c Config) any { return c.JobIdempotencyTTL }, 720 * time.Hour},
		// wq40: WORKER_QUEUES and WORKER_QUEUE_ORDER.
		{"worker queues default every queue", nil, nil, func(c Config) any { return c.WorkerQueues }, []queue.WorkerQueue(nil)},
		{"worker queue order default weighted", nil, nil, func(c Config) any { return c.WorkerQueueOrder }, "weighted"},
		{"worker queues weighted", map[string]string{"WORKER_QUEUES": "critical=6,default=3,low=1"}, nil,
			func(c Config) any { return c.WorkerQueues }, []queue.WorkerQueue{{Name: "critical", Weight: 6}, {Name: "default", Weight: 3}, {Name: "low", Weight: 1}}},
		{"worker queues names alone, blanks trimmed, colon in a name", map[string]string{"WORKER_QUEUES": " emails , tenant:7 = 1000 ,reports"}, nil,
			func(c Config) any { return c.WorkerQueues }, []queue.WorkerQueue{{Name: "emails", Weight: 1}, {Name: "tenant:7", Weight: 1000}, {Name: "reports", Weight: 1}}},
		{"worker queues flag beats env", map[string]string{"WORKER_QUEUES": "a"}, map[string]string{"worker-queues": "b=2"},
			func(c Config) any { return c.WorkerQueues }, []queue.WorkerQueue{{Name: "b", Weight: 2}}},
		{"worker queues empty flag is every queue", map[string]string{"WORKER_QUEUES": "a"}, map[string]string{"worker-queues": ""},
			func(c Config) any { return c.WorkerQueues }, []queue.WorkerQueue(nil)},
		{"worker queue order strict", map[string]string{"WORKER_QUEUES": "critical,default,low", "WORKER_QUEUE_ORDER": "Strict"}, nil,
			func(c Config) any { return c.WorkerQueueOrder }, "strict"},
		{"worker queues weights of 1 written out, weighted", map[string]string{"WORKER_QUEUES": "a=1,b"}, nil,
			func(c Config) any { return c.WorkerQueues }, []queue.WorkerQueue{{Name: "a", Weight: 1}, {Name: "b", Weight: 1}}},
		{"worker queue order weighted without queues", nil, map[string]string{"worker-queue-order": "weighted"},
			func(c Config) any { return c.WorkerQueueOrder }, "weighted"},
		{"worker queues blank is every queue", map[string]string{"WORKER_QUEUES": " "}, nil,
			func(c Config) any { return c.WorkerQueues }, []queue.WorkerQueue(nil)},
		{"worker queue weight 10 and 1000", map[string]string{"WORKER_QUEUES": "a=10,b=1000"}, nil,
			func(c Config) any { return c.WorkerQueues }, []queue.WorkerQueue{{Name: "a", Weight: 10}, {Name: "b", Weight: 1000}}},
		{"worker queues 100 entries", map[string]string{"WORKER_QUEUES": manyQueues(100)}, nil,
			func(c Config) any { return len(c.WorkerQueues) }, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(tt.env), tt.flags)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if diff := cmp.Diff(tt.want, tt.check(c), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestLoadBad(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		flags map[string]string
		want  string
	}{
		{"not a number", map[string]string{"QUEUE_MAX_PENDING": "abc"}, nil, `QUEUE_MAX_PENDING: "abc" is not a whole number`},
		{"flag named", nil, map[string]string{"workers": "x"}, `--workers: "x" is not a whole number`},
		{"negative", map[string]string{"QUEUE_MAX_PENDING": "-1"}, nil, "QUEUE_MAX_PENDING: -1 must not be negative"},
		{"negative queue bound", map[string]string{"QUEUE_MAX_QUEUES": "-5"}, nil, "QUEUE_MAX_QUEUES: -5 must not be negative"},
		{"duration without unit", map[string]string{"JOB_LEASE": "30"}, nil, `JOB_LEASE: "30" needs a unit, e.g. 30s`},
		{"bad duration", map[string]string{"SHUTDOWN_TIMEOUT": "soon"}, nil, `SHUTDOWN_TIMEOUT: "soon" is not a duration`},
		{"bad bool", map[string]string{"PROMETHEUS_ENABLED": "maybe"}, nil, `PROMETHEUS_ENABLED: "maybe" is not true or false`},
		{"bad enum", map[string]string{"RATE_LIMIT_ON_BACKEND_ERROR": "panic"}, nil, `RATE_LIMIT_ON_BACKEND_ERROR: "panic" must be local, allow or deny`},
		{"factor range", map[string]string{"PENALTY_FACTOR": "1.5"}, nil, "PENALTY_FACTOR: 1.5 must be in (0, 1]"},
		// A bucket refills a token per whole microsecond: 2^30 a minute
		// refilled 60,000,000 (rr30-rl RR30-5), refused before the
		// listener binds.
		{"rate not refilled exactly", map[string]string{"RATE_LIMIT_RUN_PER_MINUTE": "1073741824"}, nil,
			"RATE_LIMIT_RUN_PER_MINUTE: 1073741824 per minute cannot be refilled exactly: a bucket refills a token per whole microsecond (every 1µs here: 60000000 per 1m0s); every rate up to 600000 per 1m0s is exact to 1%"},
		{"premium rate not refilled exactly", nil, map[string]string{"rate-limit-assistant-per-minute": "600000", "rate-limit-premium-multiplier": "7"},
			"--rate-limit-assistant-per-minute: 600000 per minute × --rate-limit-premium-multiplier 7 (the premium tier's rate) cannot be refilled exactly"},
		{"bad cidr", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/99"}, nil, `TRUSTED_PROXIES: "10.0.0.0/99" has "10.0.0.0/99", which is not a CIDR`},
		{"bad url", map[string]string{"QUEUE_URL": "http://x"}, nil, `QUEUE_URL: "http://x" is not a redis://`},
		{"route", map[string]string{"PROMETHEUS_METRICS_ROUTE": "metrics"}, nil, `PROMETHEUS_METRICS_ROUTE: "metrics" must start with /`},
		{"client ip header", map[string]string{"CLIENT_IP_HEADER": "bad header"}, nil, `CLIENT_IP_HEADER: "bad header" is not a header name`},
		{"route not clean", map[string]string{"PROMETHEUS_METRICS_ROUTE": "//m"}, nil, `PROMETHEUS_METRICS_ROUTE: "//m" is not a clean path`},
		{"route with a dot", map[string]string{"PROMETHEUS_METRICS_ROUTE": "/m/./x"}, nil, `PROMETHEUS_METRICS_ROUTE: "/m/./x" is not a clean path`},
		{"route with dots", map[string]string{"PROMETHEUS_METRICS_ROUTE": "/m/../x"}, nil, `PROMETHEUS_METRICS_ROUTE: "/m/../x" is not a clean path`},
		{"route of the API", map[string]string{"PROMETHEUS_METRICS_ROUTE": "/healthz"}, nil, `PROMETHEUS_METRICS_ROUTE: "/healthz" is a path of the API`},
		{"route under the API", map[string]string{"PROMETHEUS_METRICS_ROUTE": "/api/dev/whoami"}, nil, `PROMETHEUS_METRICS_ROUTE: "/api/dev/whoami" is a path of the API`},
		{"route over a job", map[string]string{"PROMETHEUS_METRICS_ROUTE": "/run/metrics"}, nil, `PROMETHEUS_METRICS_ROUTE: "/run/metrics" is a path of the API`},
		{"log level", map[string]string{"LOG_LEVEL": "loud"}, nil, `LOG_LEVEL: "loud" must be debug`},
		{"addr without port", map[string]string{"REFRAKT_ADDR": "bogus"}, nil, `REFRAKT_ADDR: "bogus" is not host:port`},
		{"addr port range", map[string]string{"REFRAKT_ADDR": ":99999"}, nil, `REFRAKT_ADDR: ":99999" has port "99999"; want a number from 0 to 65535`},
		// A value a flag gave is named by the flag, whether parsing or
		// Validate refuses it (Validate named the variable).
		{"addr port range by flag", nil, map[string]string{"addr": ":99999"}, `--addr: ":99999" has port "99999"; want a number from 0 to 65535`},
		{"addr port name", map[string]string{"REFRAKT_ADDR": "127.0.0.1:nosuchservice"}, nil, `REFRAKT_ADDR: "127.0.0.1:nosuchservice" has port "nosuchservice"`},
		{"burst past the limiter's bound", map[string]string{"RATE_LIMIT_RUN_BURST": "9999999999"}, nil, "RATE_LIMIT_RUN_BURST: 9999999999 must be between 1 and 1073741824"},
		{"strikes past the limiter's bound", map[string]string{"BAN_AFTER_STRIKES": "1000000"}, nil, "BAN_AFTER_STRIKES: 1000000 must be between 1 and 250"},
		{"premium past the limiter's bound", map[string]string{"RATE_LIMIT_PREMIUM_MULTIPLIER": "5000"}, nil, "RATE_LIMIT_PREMIUM_MULTIPLIER: 5000 must be between 1 and 1000"},
		{"ban past an hour", map[string]string{"BAN_SECONDS": "2h"}, nil, "BAN_SECONDS: 2h0m0s must be at most 1h0m0s"},
		{"shutdown delay past an hour", map[string]string{"SHUTDOWN_DELAY": "2562047h"}, nil, "SHUTDOWN_DELAY: 2562047h0m0s must be at most 1h0m0s"},
		{"shutdown delay past an hour by flag", nil, map[string]string{"shutdown-delay": "61m"}, "--shutdown-delay: 1h1m0s must be at most 1h0m0s"},
		{"strikes below the limiter's bound", map[string]string{"BAN_AFTER_STRIKES": "0"}, nil, "BAN_AFTER_STRIKES: 0 must be between 1 and 250"},
		// Review lifecycle #9: NaN gave "-2562047h47m16.854775808s must be
		// at least 10ms", and 1e9 was told to read 1e9s, which is no
		// duration either.
		// docs30 D13: a negative number of seconds was "is out of range",
		// where "-5s" and every other negative value say the range.
		{"negative plain seconds", map[string]string{"QUEUE_MAX_AGE_SECONDS": "-5"}, nil, "QUEUE_MAX_AGE_SECONDS: -5s must not be negative"},
		{"negative plain seconds by flag", nil, map[string]string{"queue-max-age": "-5"}, "--queue-max-age: -5s must not be negative"},
		{"negative plain ban", map[string]string{"BAN_SECONDS": "-5"}, nil, "BAN_SECONDS: -5s must be at least 1s"},
		{"negative plain tick", map[string]string{"TICK_INTERVAL": "-0.5"}, nil, "TICK_INTERVAL: -500ms must be at least 10ms"},
		{"negative seconds past the bound", map[string]string{"QUEUE_MAX_AGE_SECONDS": "-2e9"}, nil, `QUEUE_MAX_AGE_SECONDS: "-2e9" must not be negative`},
		{"seconds past the bound", map[string]string{"PROMETHEUS_QUEUE_POLL_INTERVAL": "2e9"}, nil, `PROMETHEUS_QUEUE_POLL_INTERVAL: "2e9" must be at most 1e9 seconds`},
		{"NaN seconds", map[string]string{"TICK_INTERVAL": "NaN"}, nil, `TICK_INTERVAL: "NaN" is not a number of seconds or a duration`},
		{"nan seconds", map[string]string{"QUEUE_MAX_AGE_SECONDS": "nan"}, nil, `QUEUE_MAX_AGE_SECONDS: "nan" is not a number of seconds or a duration`},
		{"NaN ban", map[string]string{"BAN_SECONDS": "NaN"}, nil, `BAN_SECONDS: "NaN" is not a number of seconds or a duration`},
		{"NaN poll", nil, map[string]string{"prometheus-poll-interval": "NaN"}, `--prometheus-poll-interval: "NaN" is not a number of seconds or a duration`},
		{"Inf seconds", map[string]string{"TICK_INTERVAL": "-Inf"}, nil, `TICK_INTERVAL: "-Inf" is not a number of seconds or a duration`},
		{"no unit suggested that does not parse", map[string]string{"SHUTDOWN_TIMEOUT": "1e9"}, nil, `SHUTDOWN_TIMEOUT: "1e9" is not a duration (e.g. 250ms, 30s, 5m)`},
		{"NaN duration", map[string]string{"JOB_LEASE": "NaN"}, nil, `JOB_LEASE: "NaN" is not a duration (e.g. 250ms, 30s, 5m)`},
		{"unit suggested when it parses", map[string]string{"PENALTY_DECAY": "2.5"}, nil, `PENALTY_DECAY: "2.5" needs a unit, e.g. 2.5s`},
		// Review lifecycle #10: slog's offsets are not levels README
		// documents (error+100 silenced every line), nor are t, yes or on
		// booleans.
		{"level offset", map[string]string{"LOG_LEVEL": "info+2"}, nil, `LOG_LEVEL: "info+2" must be debug, info, warn or error`},
		{"level offset past error", map[string]string{"LOG_LEVEL": "error+100"}, nil, `LOG_LEVEL: "error+100" must be debug, info, warn or error`},
		{"level negative offset", map[string]string{"LOG_LEVEL": "DEBUG-4"}, nil, `LOG_LEVEL: "DEBUG-4" must be debug, info, warn or error`},
		{"level negative offset by flag", nil, map[string]string{"log-level": "DEBUG-4"}, `--log-level: "DEBUG-4" must be debug, info, warn or error`},
		{"bool t", map[string]string{"RATE_LIMIT_ENABLED": "t"}, nil, `RATE_LIMIT_ENABLED: "t" is not true or false`},
		{"bool yes", map[string]string{"RATE_LIMIT_ENABLED": "yes"}, nil, `RATE_LIMIT_ENABLED: "yes" is not true or false`},
		{"cluster yes", map[string]string{"REDIS_CLUSTER": "yes"}, nil, `REDIS_CLUSTER: "yes" must be auto, true or false`},
		{"format shown as given", map[string]string{"LOG_FORMAT": "XML"}, nil, `LOG_FORMAT: "XML" must be text or json`},
		{"same tokens", map[string]string{"REFRAKT_DEVELOPER_TOKEN": "abcabcabcabcabcabc", "REFRAKT_OPERATOR_TOKEN": "abcabcabcabcabcabc"}, nil, "must differ"},
		{"same tokens, each named as given", map[string]string{"REFRAKT_DEVELOPER_TOKEN": "abcabcabcabcabcabc"}, map[string]string{"operator-token": "abcabcabcabcabcabc"},
			"--operator-token: must differ from REFRAKT_DEVELOPER_TOKEN"},
		{"workers by flag", nil, map[string]string{"workers": "-1"}, "--workers: -1 must be between 0 and 1024"},
		// backoff36: the retry backoff's base and cap.
		// timeout37: JOB_TIMEOUT, 1ms to 168h; 0 refused.
		{"job timeout zero", map[string]string{"JOB_TIMEOUT": "0s"}, nil, "JOB_TIMEOUT: 0s must be at least 1ms"},
		{"job timeout negative", nil, map[string]string{"job-timeout": "-5m"}, "--job-timeout: -5m0s must be at least 1ms"},
		{"job timeout below 1ms", map[string]string{"JOB_TIMEOUT": "500us"}, nil, "JOB_TIMEOUT: 500µs must be at least 1ms"},
		{"job timeout past 7 days", map[string]string{"JOB_TIMEOUT": "169h"}, nil, "JOB_TIMEOUT: 169h0m0s must be at most 168h0m0s"},
		{"job timeout without unit", nil, map[string]string{"job-timeout": "30"}, `--job-timeout: "30" needs a unit, e.g. 30s`},
		{"retry base without unit", map[string]string{"JOB_RETRY_BASE": "100"}, nil, `JOB_RETRY_BASE: "100" needs a unit, e.g. 100s`},
		{"retry base not a duration", nil, map[string]string{"job-retry-base": "fast"}, `--job-retry-base: "fast" is not a duration`},
		{"retry base below 1ms", map[string]string{"JOB_RETRY_BASE": "500us"}, nil, "JOB_RETRY_BASE: 500µs must be at least 1ms"},
		{"retry base zero", nil, map[string]string{"job-retry-base": "0s"}, "--job-retry-base: 0s must be at least 1ms"},
		{"retry base negative", map[string]string{"JOB_RETRY_BASE": "-1s"}, nil, "JOB_RETRY_BASE: -1s must be at least 1ms"},
		{"retry max without unit", map[string]string{"JOB_RETRY_MAX": "3600"}, nil, `JOB_RETRY_MAX: "3600" needs a unit, e.g. 3600s`},
		{"retry max below the base", map[string]string{"JOB_RETRY_BASE": "2s", "JOB_RETRY_MAX": "1s"}, nil, "JOB_RETRY_MAX: 1s must be at least JOB_RETRY_BASE (2s)"},
		{"retry max below the default base", nil, map[string]string{"job-retry-max": "50ms"}, "--job-retry-max: 50ms must be at least JOB_RETRY_BASE (100ms)"},
		{"retry max below the base, both flags", nil, map[string]string{"job-retry-base": "1m", "job-retry-max": "30s"}, "--job-retry-max: 30s must be at least --job-retry-base (1m0s)"},
		{"retry max past 7 days", map[string]string{"JOB_RETRY_MAX": "169h"}, nil, "JOB_RETRY_MAX: 169h0m0s must be at most 168h0m0s: a longer cap holds a failing job in the retry set for weeks"},
		{"retry max past 7 days by flag", nil, map[string]string{"job-retry-max": "8760h"}, "--job-retry-max: 8760h0m0s must be at most 168h0m0s"},
		// idem37: JOB_IDEMPOTENCY_TTL is 1s to 720h.
		{"idempotency ttl below 1s", map[string]string{"JOB_IDEMPOTENCY_TTL": "999ms"}, nil, "JOB_IDEMPOTENCY_TTL: 999ms must be between 1s and 720h0m0s"},
		{"idempotency ttl zero by flag", nil, map[string]string{"job-idempotency-ttl": "0s"}, "--job-idempotency-ttl: 0s must be between 1s and 720h0m0s"},
		{"idempotency ttl past 30 days", map[string]string{"JOB_IDEMPOTENCY_TTL": "721h"}, nil, "JOB_IDEMPOTENCY_TTL: 721h0m0s must be between 1s and 720h0m0s"},
		// hook38: JOB_WEBHOOKS pairs and JOB_WEBHOOK_SECRET.
		{"webhook of a built-in", map[string]string{"JOB_WEBHOOKS": "echo=http://h/x"}, nil, "JOB_WEBHOOKS: pair 1: its type is a built-in job type; a webhook cannot replace it"},
		{"webhook twice", map[string]string{"JOB_WEBHOOKS": "a=http://h/x,a=http://h/y"}, nil, "JOB_WEBHOOKS: pair 2: its type is given twice"},
		{"webhook bad type", map[string]string{"JOB_WEBHOOKS": "no spaces=http://h/x"}, nil, "JOB_WEBHOOKS: pair 1: the type before = is not a job type name (want 1-64 letters, digits, and _ . : -"},
		{"webhook not a pair", nil, map[string]string{"job-webhooks": "a=http://h/x,http://h/y"}, "--job-webhooks: pair 2 is not TYPE=URL"},
		{"webhook port too high", map[string]string{"JOB_WEBHOOKS": "a=http://h:99999/x"}, nil, "JOB_WEBHOOKS: pair 1: the URL has a port outside 1-65535"},
		{"webhook port zero", map[string]string{"JOB_WEBHOOKS": "b=http://h/b,a=http://h:0/x"}, nil, "JOB_WEBHOOKS: pair 2: the URL has a port outside 1-65535"},
		{"webhook relative", map[string]string{"JOB_WEBHOOKS": "a=/jobs/a"}, nil, "JOB_WEBHOOKS: pair 1: the URL is not absolute"},
		{"webhook ftp", map[string]string{"JOB_WEBHOOKS": "a=ftp://h/x"}, nil, "JOB_WEBHOOKS: pair 1: the URL has a scheme other than http or https"},
		{"webhook no host", map[string]string{"JOB_WEBHOOKS": "a=http:///x"}, nil, "JOB_WEBHOOKS: pair 1: the URL has no host"},
		{"webhook userinfo", map[string]string{"JOB_WEBHOOKS": "a=https://bob:Pa55word@h/x"}, nil, "JOB_WEBHOOKS: pair 1: the URL holds user info (user:password@): credentials in a URL end up in logs; remove them and sign deliveries with JOB_WEBHOOK_SECRET"},
		{"webhook user alone", map[string]string{"JOB_WEBHOOKS": "a=https://bob@h/x"}, nil, "JOB_WEBHOOKS: pair 1: the URL holds user info"},
		{"webhook fragment", map[string]string{"JOB_WEBHOOKS": "a=https://h/x#top"}, nil, "JOB_WEBHOOKS: pair 1: the URL has a fragment"},
		{"webhook secret short", map[string]string{"JOB_WEBHOOK_SECRET": "short-secret"}, nil, "JOB_WEBHOOK_SECRET: is 12 bytes; want at least 16 (the value is not shown)"},
		{"idempotency ttl without unit", map[string]string{"JOB_IDEMPOTENCY_TTL": "60"}, nil, `JOB_IDEMPOTENCY_TTL: "60" needs a unit, e.g. 60s`},
		// wq40: WORKER_QUEUES and WORKER_QUEUE_ORDER.
		{"worker queue bad name", map[string]string{"WORKER_QUEUES": "a,no spaces"}, nil, `WORKER_QUEUES: entry 2: "no spaces" is not a queue name (want 1-64 letters, digits, and _ . : -)`},
		{"worker queue name too long", nil, map[string]string{"worker-queues": strings.Repeat("q", 65)}, "--worker-queues: entry 1: "},
		{"worker queue empty entry", map[string]string{"WORKER_QUEUES": "a,,b"}, nil, "WORKER_QUEUES: entry 2 is empty (want NAME or NAME=WEIGHT, comma-separated)"},
		{"worker queue trailing comma", map[string]string{"WORKER_QUEUES": "a,"}, nil, "WORKER_QUEUES: entry 2 is empty"},
		{"worker queue no name", map[string]string{"WORKER_QUEUES": "=3"}, nil, `WORKER_QUEUES: entry 1: "" is not a queue name`},
		{"worker queue weight zero", map[string]string{"WORKER_QUEUES": "a=0"}, nil, `WORKER_QUEUES: entry 1 (a): weight "0" is not a whole number from 1 to 1000`},
		{"worker queue weight too high", nil, map[string]string{"worker-queues": "a=2,b=1001"}, `--worker-queues: entry 2 (b): weight "1001" is not a whole number from 1 to 1000`},
		{"worker queue weight not a number", map[string]string{"WORKER_QUEUES": "a=high"}, nil, `WORKER_QUEUES: entry 1 (a): weight "high" is not a whole number from 1 to 1000`},
		{"worker queue weight empty", map[string]string{"WORKER_QUEUES": "a="}, nil, `WORKER_QUEUES: entry 1 (a): weight "" is not a whole number`},
		{"worker queue weight negative", map[string]string{"WORKER_QUEUES": "a=-1"}, nil, `WORKER_QUEUES: entry 1 (a): weight "-1"`},
		{"worker queue twice", map[string]string{"WORKER_QUEUES": "a,b=2,a=3"}, nil, "WORKER_QUEUES: entry 3: queue a is listed twice"},
		// rvwq40 NIT-1: digits alone, as RATE_LIMITS takes numbers, and no leading 0.
		{"worker queue weight with a sign", map[string]string{"WORKER_QUEUES": "a=+3"}, nil, `WORKER_QUEUES: entry 1 (a): weight "+3" is not a whole number from 1 to 1000`},
		{"worker queue weight leading zero", map[string]string{"WORKER_QUEUES": "a=03"}, nil, `WORKER_QUEUES: entry 1 (a): weight "03" is not a whole number from 1 to 1000`},
		{"worker queue weight underscore", map[string]string{"WORKER_QUEUES": "a=1_0"}, nil, `WORKER_QUEUES: entry 1 (a): weight "1_0"`},
		{"worker queue reserved _other", map[string]string{"WORKER_QUEUES": "a,_other"}, nil, "WORKER_QUEUES: entry 2: _other is reserved (the metrics' and stats' sum of the queues beyond their cap)"},
		{"worker queues past 100", map[string]string{"WORKER_QUEUES": manyQueues(101)}, nil, "WORKER_QUEUES: lists 101 entries; at most 100"},
		{"worker queue order unknown", map[string]string{"WORKER_QUEUES": "a", "WORKER_QUEUE_ORDER": "fifo"}, nil, `WORKER_QUEUE_ORDER: "fifo" must be weighted or strict`},
		{"worker queue order strict with weights", map[string]string{"WORKER_QUEUES": "a=2,b"}, map[string]string{"worker-queue-order": "strict"},
			"--worker-queue-order: strict takes no weights, and WORKER_QUEUES gives some: list the queues as NAME alone, in order, or use weighted"},
		{"worker queue order strict with a weight of 1", map[string]string{"WORKER_QUEUES": "a,b=1", "WORKER_QUEUE_ORDER": "strict"}, nil,
			"WORKER_QUEUE_ORDER: strict takes no weights, and WORKER_QUEUES gives some"},
		{"worker queue order strict with weights by flag", map[string]string{"WORKER_QUEUE_ORDER": "strict"}, map[string]string{"worker-queues": "a=5"},
			"WORKER_QUEUE_ORDER: strict takes no weights, and --worker-queues gives some"},
		{"worker queue order strict without queues", map[string]string{"WORKER_QUEUE_ORDER": "strict"}, nil,
			"WORKER_QUEUE_ORDER: strict needs WORKER_QUEUES: the queues in the order to visit them"},
		{"worker queue order strict without queues, flag", nil, map[string]string{"worker-queue-order": "strict", "worker-queues": ""},
			"--worker-queue-order: strict needs --worker-queues"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(env(tt.env), tt.flags)
			if err == nil {
				t.Fatalf("Load accepted it; want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q; want one line containing %q", err, tt.want)
			}
		})
	}
}

// TestMessagesNameTheSettingAsGiven: for every setting that refuses some
// value, the message names the flag when a flag gave the value, and the
// variable when the environment did, whether parsing or Validate refused
// it (Validate named the variable of a flag's value: `--workers -1` said
// "WORKER_CONCURRENCY: -1 must be between 0 and 1024").
func TestMessagesNameTheSettingAsGiven(t *testing.T) {
	// Values some setting refuses: not a number, out of every range, not
	// a word, a path or an address.
	bad := []string{"-1", "abc", "9999999999", "0", "x y", ""}
	// The settings that take any text.
	anyText := []string{"REFRAKT_PREFIX", "PROMETHEUS_BEARER_TOKEN", "REFRAKT_DEVELOPER_TOKEN", "REFRAKT_OPERATOR_TOKEN"}
	for _, s := range Settings() {
		refused := false
		for _, v := range bad {
			_, ferr := Load(env(nil), map[string]string{s.Flag: v})
			if ferr == nil {
				continue
			}
			refused = true
			if msg := ferr.Error(); !strings.HasPrefix(msg, "--"+s.Flag+": ") || strings.Contains(msg, s.Env) {
				t.Errorf("--%s %q: %q; want it to name --%s, not %s", s.Flag, v, msg, s.Flag, s.Env)
			}
			if v == "" { // an empty variable is an unset one
				break
			}
			_, eerr := Load(env(map[string]string{s.Env: v}), nil)
			if eerr == nil {
				t.Errorf("%s=%q accepted; --%s %q refused: %v", s.Env, v, s.Flag, v, ferr)
			} else if msg := eerr.Error(); !strings.HasPrefix(msg, s.Env+": ") || strings.Contains(msg, "--"+s.Flag) {
				t.Errorf("%s=%q: %q; want it to name %s, not --%s", s.Env, v, msg, s.Env, s.Flag)
			}
			break
		}
		if !refused && !slices.Contains(anyText, s.Env) {
			t.Errorf("--%s refused none of %q: give the test a value it refuses", s.Flag, bad)
		}
	}
}

func TestEverySettingHasEnvFlagAndUsage(t *testing.T) {
	seenEnv, seenFlag := map[string]bool{}, map[string]bool{}
	for _, s := range Settings() {
		if s.Env == "" || s.Flag == "" || s.Usage == "" {
			t.Errorf("setting %+v lacks env, flag or usage", s)
		}
		if seenEnv[s.Env] || seenFlag[s.Flag] {
			t.Errorf("duplicate setting %s / --%s", s.Env, s.Flag)
		}
		seenEnv[s.Env], seenFlag[s.Flag] = true, true
	}
	if len(seenEnv) < 30 {
		t.Errorf("only %d settings; DESIGN §7 names more", len(seenEnv))
	}
}

func TestLogValueHidesSecrets(t *testing.T) {
	c := Default()
	c.DeveloperToken = "s3cr3t-developer-token"
	c.PrometheusBearerToken = "s3cr3t-prom"
	if s := c.LogValue().String(); strings.Contains(s, "s3cr3t") {
		t.Fatalf("log value leaks a secret: %s", s)
	}
}

// logAttrs renders c as the start-up line does (c.LogValue, resolved) and
// returns its keys and values as text.
func logAttrs(t *testing.T, c Config) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range c.LogValue().Resolve().Group() {
		if _, dup := out[a.Key]; dup {
			t.Errorf("key %s twice in the log value", a.Key)
		}
		out[a.Key] = a.Value.String()
	}
	return out
}

// TestLogValueShowsEverySetting: the start-up line carries every exported
// field of Config: changing any one of them alone changes what its key
// shows (backend aside, which only sums QUEUE_URL up). It carried addr,
// backend, workers, rate_limit, prometheus and the tokens' presence only.
func TestLogValueShowsEverySetting(t *testing.T) {
	base := logAttrs(t, Default())
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		c := Default()
		v := reflect.ValueOf(&c).Elem().Field(i)
		switch x := v.Addr().Interface().(type) {
		case *string:
			*x = "changed-" + f.Name
		case *int:
			*x += 7
		case *float64:
			*x += 0.25
		case *bool:
			*x = !*x
		case *time.Duration:
			*x += 1500 * time.Millisecond
		case *[]webhook.Target:
			*x = append(*x, webhook.Target{Type: "t", URL: "http://h/t"})
		case *[]netip.Prefix:
			*x = append(*x, netip.MustParsePrefix("10.9.0.0/16"))
		case *[]queue.WorkerQueue:
			*x = append(*x, queue.WorkerQueue{Name: "emails", Weight: 2})
		case *[]ratelimit.Limit:
			*x = append(*x, ratelimit.Limit{Name: "api", Scopes: []ratelimit.Scope{ratelimit.ScopeIP}, Policy: ratelimit.Policy{Burst: 1, Rate: 1, Window: time.Second}})
		default:
			t.Fatalf("Config.%s is a %s: teach the test to change it", f.Name, f.Type)
		}
		got := logAttrs(t, c)
		var changed []string
		for k, v := range got {
			if k != "backend" && v != base[k] {
				changed = append(changed, k)
			}
		}
		if len(changed) != 1 {
			t.Errorf("changing Config.%s alone changed %v of the log value; want one key: every setting shown, each once", f.Name, changed)
		}
	}
	// The keys the line had keep their names and values.
	want := map[string]string{"addr": ":8080", "backend": "memory", "workers": "4", "rate_limit": "true", "prometheus": "true",
		"developer_token": "unset", "operator_token": "unset", "prometheus_token": "unset"}
	for k, v := range want {
		if base[k] != v {
			t.Errorf("log value %s=%q, want %q", k, base[k], v)
		}
	}
	if len(base) != len(Settings())+1 {
		t.Errorf("%d keys in the log value, want one per setting and backend (%d)", len(base), len(Settings())+1)
	}
}

// TestLogValueShowsNoSecret: through both log formats, tokens are set or
// unset (never their value nor their length), and a Redis URL's password,
// in its user info or its query, is xxxxx.
func TestLogValueShowsNoSecret(t *testing.T) {
	const secret = "Sekr3tPW"
	c := Default()
	c.DeveloperToken = "dev-" + secret + "-0123456789"
	c.OperatorToken = "op-" + secret
	c.PrometheusBearerToken = "prom-" + secret + "-42"
	c.JobWebhookSecret = "whsec-" + secret + "-0123456789"
	c.JobWebhooks = []webhook.Target{{Type: "email.send", URL: "https://h/jobs?key=" + secret}}
	c.RedisURL = "redis://user:" + secret + "@127.0.0.1:6379/0?password=" + secret
	for _, tt := range []struct {
		name string
		h    func(*strings.Builder) slog.Handler
	}{
		{"text", func(b *strings.Builder) slog.Handler { return slog.NewTextHandler(b, nil) }},
		{"json", func(b *strings.Builder) slog.Handler { return slog.NewJSONHandler(b, nil) }},
	} {
		var b strings.Builder
		slog.New(tt.h(&b)).Info("listening", "config", c)
		if strings.Contains(b.String(), secret) || !strings.Contains(b.String(), "redis://user:xxxxx@127.0.0.1:6379/0?password=xxxxx") {
			t.Errorf("%s: a secret shown, or the URL not shown redacted: %s", tt.name, b.String())
		}
	}
	got := logAttrs(t, c)
	if got["job_webhooks"] != "email.send" {
		t.Errorf("job_webhooks=%q, want the types alone", got["job_webhooks"])
	}
	for _, k := range []string{"developer_token", "operator_token", "prometheus_token", "job_webhook_secret"} {
		if got[k] != "set" {
			t.Errorf("%s=%q, want set", k, got[k])
		}
	}
}

// TestListenAddrForms: the forms of REFRAKT_ADDR net.Listen takes pass: a
// number, a service name, no port (any free one), any host or none.
func TestListenAddrForms(t *testing.T) {
	for _, addr := range []string{":8080", "127.0.0.1:0", "[::1]:8080", "127.0.0.1:", ":http", "localhost:65535"} {
		if _, err := Load(env(map[string]string{"REFRAKT_ADDR": addr}), nil); err != nil {
			t.Errorf("REFRAKT_ADDR=%s: %v", addr, err)
		}
	}
}

// TestSecretLikeSettingsNeverLogged (a code review's guard): the start-up
// line shows every setting as given unless its Setting hides it, so a new
// setting named like a secret (a token, a password, a key) must show as set
// or unset, and one that holds a URL without its password; a setting added
// with str() would otherwise be logged in clear, and
// TestLogValueShowsEverySetting would even want it there.
func TestSecretLikeSettingsNeverLogged(t *testing.T) {
	const secret = "S3cr3tValue-0f9e8d7c"
	for _, s := range Settings() {
		c := Default()
		switch {
		case strings.Contains(s.Env, "TOKEN") || strings.Contains(s.Env, "PASSWORD") || strings.Contains(s.Env, "SECRET") || strings.HasSuffix(s.Env, "_KEY"):
			if err := s.set(&c, secret); err != nil {
				t.Fatalf("%s: %v", s.Env, err)
			}
			if v := s.value(&c).String(); v != "set" {
				t.Errorf("%s set: the log shows %q, want set", s.Env, v)
			}
		case strings.HasSuffix(s.Env, "_URL"):
			if err := s.set(&c, "redis://user:"+secret+"@127.0.0.1:6379/0"); err != nil {
				t.Fatalf("%s: %v", s.Env, err)
			}
			if v := s.value(&c).String(); strings.Contains(v, secret) {
				t.Errorf("%s: the log shows %q, its password included", s.Env, v)
			}
		}
	}
}
