package daemon

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/refrakt/refrakt/internal/config"
	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/metrics"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
	"github.com/refrakt/refrakt/internal/core/ratelimit/memstore"
	"github.com/refrakt/refrakt/internal/core/ratelimit/redisstore"
)

// clockFunc adapts Deps.Clock (a test's clock; NewServer uses
// ratelimit.SystemClock otherwise) to ratelimit.Clock.
type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

// limitObserver feeds the limiter's events into the Prometheus collectors.
// Labels are limit and scope names only, never an IP or a user. Decided runs
// on every limited request, so its counters are looked up once per label set.
type limitObserver struct {
	m         *metrics.Metrics
	decisions *seriesCache[[3]string, prometheus.Counter]
}

func newLimitObserver(m *metrics.Metrics) limitObserver {
	return limitObserver{m: m, decisions: newSeriesCache(func(k [3]string) prometheus.Counter {
		return m.RateLimitDecisions.WithLabelValues(k[0], k[1], k[2])
	})}
}

func (o limitObserver) Decided(limit, scope, decision string) {
	o.decisions.get([3]string{limit, scope, decision}).Inc()
}
func (o limitObserver) Banned()                { o.m.RateLimitBans.Inc() }
func (o limitObserver) BackendError(op string) { o.m.BackendError(limiterOp(op)) }

// limiterOp is the op label of a failed limiter store call.
func limiterOp(op string) string { return "ratelimit_" + op }

// LimiterConfig maps the daemon's settings onto the limiter's; the CLI's
// direct driver builds the same limiter from the same environment.
func LimiterConfig(cfg config.Config) ratelimit.Config {
	c := ratelimit.DefaultConfig()
	c.Enabled = cfg.RateLimitEnabled
	c.RunBurst, c.RunPerMinute, c.AssistantPerMinute = cfg.RunBurst, cfg.RunPerMinute, cfg.AssistantPerMinute
	c.PremiumMultiplier = cfg.PremiumMultiplier
	c.PenaltyFactor, c.PenaltyDecay = cfg.PenaltyFactor, cfg.PenaltyDecay
	c.BanAfterStrikes, c.BanDuration = cfg.BanAfterStrikes, cfg.BanDuration
	c.OnBackendError = ratelimit.BackendErrorPolicy(cfg.OnBackendError)
	c.BackendTimeout = cfg.BackendTimeout
	c.Custom = cfg.RateLimits
	return c
}

// buildRateLimit builds the limiter on the backend: the memory store, or
// the Redis store with an in-process store to fall back on. Its background
// loops (override refresh, penalized-keys gauge and, on Redis, publishing
// the limits for `limits get --redis`) are a component.
func (s *Server) buildRateLimit() error {
	cfg := LimiterConfig(s.cfg)
	deps := ratelimit.Deps{Clock: s.clock, Observer: newLimitObserver(s.metrics), Logger: s.log}
	var (
		closeStore func()
		rs         *redisstore.Store // nil on the memory backend
	)
	if s.backend.Redis != nil {
		rs = redisstore.New(s.backend.Redis, redisstore.Options{Prefix: s.backend.Prefix, Timeout: cfg.BackendTimeout})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := rs.Load(ctx); err != nil {
			// Not fatal: scripts are loaded again on first use (NOSCRIPT fallback).
			s.log.Warn("cannot preload the rate-limit scripts", "err", err, core.CauseAttr(err))
		}
		cancel()
		deps.Store, deps.Local, closeStore = rs, memstore.New(s.clock), func() { rs.Close() }
	} else {
		deps.Store, closeStore = memstore.New(s.clock), func() {}
	}
	l, err := ratelimit.New(cfg, deps)
	if err != nil {
		closeStore()
		return fmt.Errorf("rate limiter: %w", err)
	}
	s.limiter = l
	s.identity = newIdentityRules(s.cfg.TrustedProxies, s.cfg.ClientIPHeader)
	// Its failures counted from 0, as the queue's are (startAtZero).
	for _, op := range ratelimit.BackendOps {
		s.metrics.BackendErrors.WithLabelValues(limiterOp(op))
	}

	var (
		cancel context.CancelFunc
		wg     sync.WaitGroup
	)
	s.addComponent("ratelimit",
		func(ctx context.Context) error {
			ctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
			wg.Add(2)
			go func() { defer wg.Done(); _ = l.Run(ctx) }()
			go func() { defer wg.Done(); s.samplePenalized(ctx) }()
			if rs != nil {
				wg.Add(1)
				go func() { defer wg.Done(); s.publishLimits(ctx, rs, limitsPublishEvery) }()
			}
			return nil
		},
		func(ctx context.Context) error {
			if cancel != nil {
				cancel()
			}
			wg.Wait()
			closeStore()
			return nil
		})
	return nil
}

// samplePenalized keeps refrakt_ratelimit_penalized_keys current, and
// refrakt_ratelimit_penalized_keys_sampled_timestamp_seconds at the time
// its last successful read began: while the backend does not answer, the
// gauge keeps its last value and the timestamp says how old it is.
func (s *Server) samplePenalized(ctx context.Context) {
	every := s.cfg.PrometheusQueuePollInterval
	if every <= 0 {
		every = 5 * time.Second
	}
	everyTick(ctx, every, func() {
		at := unixSeconds(s.clock.Now())
		if n, err := s.limiter.PenalizedKeys(ctx); err == nil {
			s.metrics.RateLimitPenalized.Set(float64(n))
			s.metrics.RateLimitSampled.Set(at)
		}
	})
}

// everyTick calls f at once and then every d, until ctx ends: the daemon's
// background samplers and publishers.
func everyTick(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		f()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// limited applies the named limit to h: every response it lets through
// carries the RateLimit headers; a refused request gets 429 with
// Retry-After and a JSON error naming the limit and scope. With
// RATE_LIMIT_ENABLED=false it is h itself. The job routes use it too:
// s.limited("run", h) and s.limited("assistant", h).
//
// It runs on every limited request: the token is checked only when the
// identity headers depend on it (an untrusted peer), and the headers are
// built without fmt.
func (s *Server) limited(limit string, h http.Handler) http.Handler {
	if !s.cfg.RateLimitEnabled {
		return h
	}
	users := s.keysOnUser(limit)
	// An override of the limit's tenant scope makes the caller's tenant
	// matter on a route that reads only the address otherwise: asked per
	// request (one load and a length check while no such override exists).
	// Not on tenant-meta, whose ?tenant= is the tenant it describes, not
	// the caller's: there tenant-meta:tenant finds no tenant to key on.
	onDemand := !users && limit != ratelimit.LimitTenantMeta
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.identityOf(w, r, users || onDemand && s.limiter.TenantScopeTargeted(limit))
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		d, err := s.limiter.Allow(r.Context(), ratelimit.Request{Limit: limit, IP: id.IP, User: id.User, Tenant: id.Tenant, Premium: id.Premium})
		if err != nil {
			writeError(w, r, s.log, err) // 499 when the client went away; a 503 with Retry-After
			return
		}
		if !d.Unchecked {
			setLimitHeaders(w.Header(), &d)
		}
		if d.Allowed {
			h.ServeHTTP(w, r)
			return
		}
		writeRefusal(w, &d, http.StatusTooManyRequests)
	})
}

// writeRefusal answers a request the limiter refused (d) with status (429,
// or the 403 or 401 the decision route's deny parameter asks for):
// Retry-After and a JSON error naming the limit and scope, and when a ban
// refused it, until when.
func writeRefusal(w http.ResponseWriter, d *ratelimit.Decision, status int) {
	retry := ceilSeconds(d.RetryAfter)
	w.Header().Set("Retry-After", strconv.FormatInt(retry, 10))
	details := map[string]any{"limit": d.Limit, "scope": string(d.Scope), "key": d.Key(), "retry_after_seconds": retry}
	msg := fmt.Sprintf("rate limit %q exceeded for scope %s; retry in %ds", d.Limit, d.Scope, retry)
	if d.Banned() {
		until := ceilSecond(d.BannedUntil).Format(time.RFC3339)
		details["banned_until"] = until
		// No cause: a ban of the key's own 429s and an operator's
		// (Limiter.Ban) are refused alike, and the decision cannot tell.
		msg = fmt.Sprintf("banned by rate limit %q (scope %s) until %s", d.Limit, d.Scope, until)
	}
	// The body writeErrorDetails writes for a CodeLimited error, with the
	// status the caller chose.
	writeJSON(w, status, errorBody{Error: errorDetail{Code: core.CodeLimited, Message: msg, Details: details}})
}

// identityOf resolves r's identity for the limiter and the routes that need
// a user and a tenant: the developer token, which grants the identity
// headers to an untrusted peer, is hashed only when the peer is untrusted.
// The user and the tenant are read only when users is set (a route whose
// limit keys on them, keysOnUser). Its error is a 400: identity was to be
// read from a query that does not parse, or is ambiguous (identity.go).
func (s *Server) identityOf(w http.ResponseWriter, r *http.Request, users bool) (Identity, error) {
	return s.identity.resolve(r, func() bool { return s.roleOf(w, r) == RoleDeveloper }, users)
}

// keysOnUser reports whether the named limit always applies a scope keyed
// on a user or a tenant (user, tenant, user_tenant), so that its route
// reads them; its tenant scope, which an override can put in force, is
// Limiter.TenantScopeTargeted's, asked per request. An unknown limit is
// taken to (the limiter refuses it anyway).
func (s *Server) keysOnUser(limit string) bool {
	for _, l := range s.limiter.LimitSet().Limits {
		if l.Name == limit {
			return slices.ContainsFunc(l.Scopes, func(sc ratelimit.Scope) bool {
				return sc == ratelimit.ScopeUser || sc == ratelimit.ScopeTenant || sc == ratelimit.ScopeUserTenant
			})
		}
	}
	return true
}

// The RateLimit header names in the canonical form http.Header.Set would
// produce, so setting them skips the canonicalization (and its allocation).
const (
	hdrLimit     = "Ratelimit-Limit"
	hdrRemaining = "Ratelimit-Remaining"
	hdrReset     = "Ratelimit-Reset"
	hdrPolicy    = "Ratelimit-Policy"
	hdrRateLimit = "Ratelimit"
)

// setLimitHeaders writes RateLimit-Limit, -Remaining and -Reset (whole
// seconds), and the IETF draft's structured RateLimit-Policy and RateLimit
// fields, named after the limit and scope that decided. All five values are
// built in one buffer and share one string and one slice backing, so the
// headers cost two allocations instead of a dozen.
func setLimitHeaders(h http.Header, d *ratelimit.Decision) {
	reset := ceilSeconds(d.Reset)
	var arr [192]byte
	b := arr[:0]
	var ends [5]int
	b = strconv.AppendInt(b, int64(d.Capacity), 10)
	ends[0] = len(b)
	b = strconv.AppendInt(b, int64(d.Remaining), 10)
	ends[1] = len(b)
	b = strconv.AppendInt(b, reset, 10)
	ends[2] = len(b)
	nameStart := len(b)
	b = appendLimitName(b, d.Limit, string(d.Scope))
	name := len(b) - nameStart
	b = append(b, ";q="...)
	b = strconv.AppendInt(b, int64(d.Quota()), 10)
	b = append(b, ";w="...)
	b = strconv.AppendInt(b, max(1, int64(d.Window/time.Second)), 10)
	ends[3] = len(b)
	b = append(b, b[nameStart:nameStart+name]...)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, int64(d.Remaining), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, reset, 10)
	ends[4] = len(b)

	all := string(b)
	vals := make([]string, 5)
	start := 0
	for i, end := range ends {
		vals[i] = all[start:end]
		start = end
	}
	h[hdrLimit] = vals[0:1:1]
	h[hdrRemaining] = vals[1:2:2]
	h[hdrReset] = vals[2:3:3]
	h[hdrPolicy] = vals[3:4:4]
	h[hdrRateLimit] = vals[4:5:5]
}

// appendLimitName appends strconv.Quote(limit + ":" + scope), the
// draft's policy name, without building the intermediate strings.
func appendLimitName(b []byte, limit, scope string) []byte {
	if plainASCII(limit) && plainASCII(scope) {
		b = append(b, '"')
		b = append(b, limit...)
		b = append(b, ':')
		b = append(b, scope...)
		return append(b, '"')
	}
	return strconv.AppendQuote(b, limit+":"+scope)
}

// plainASCII reports whether strconv.Quote would leave s as it is.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// ceilSeconds rounds d up to whole seconds, at least 1 for any positive
// wait (a client told "0" retries at once).
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(1, int64(math.Ceil(d.Seconds())))
}

// ceilSecond is t in UTC rounded up to a whole second: a ban's end said in
// seconds, never before the ban ends (a client that sleeps until it is let
// in, not refused again).
func ceilSecond(t time.Time) time.Time {
	return t.UTC().Add(time.Second - 1).Truncate(time.Second)
}
