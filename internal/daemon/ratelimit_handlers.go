package daemon

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// limitJSON is a limit as the API shows it.
type limitJSON struct {
	Name          string   `json:"name"`
	Scopes        []string `json:"scopes"`
	Burst         int      `json:"burst"`
	Rate          int      `json:"rate"`
	WindowSeconds int64    `json:"window_seconds"`
	PremiumBurst  int      `json:"premium_burst"`
	PremiumRate   int      `json:"premium_rate"`
}

// overrideJSON is an override as the API shows it.
type overrideJSON struct {
	Target        string     `json:"target"`
	Capacity      int        `json:"capacity"`
	WindowSeconds int64      `json:"window_seconds"`
	Mode          string     `json:"mode"`
	Origin        string     `json:"origin,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	ExpiresAt     *time.Time `json:"expires_at"`
}

func toLimitJSON(l ratelimit.TieredLimit) limitJSON {
	out := limitJSON{Name: l.Name, Burst: l.Policy.Burst, Rate: l.Policy.Rate, WindowSeconds: int64(l.Policy.Window / time.Second),
		PremiumBurst: l.Premium.Burst, PremiumRate: l.Premium.Rate, Scopes: []string{}}
	for _, sc := range l.Scopes {
		out.Scopes = append(out.Scopes, string(sc))
	}
	return out
}

func toOverrideJSON(o ratelimit.Override) overrideJSON {
	out := overrideJSON{Target: o.Target, Capacity: o.Capacity, WindowSeconds: int64(o.Window / time.Second),
		Mode: o.Mode, Origin: o.Origin, CreatedAt: o.CreatedAt.UTC(), ExpiresAt: core.UTCOrNil(o.ExpiresAt)}
	return out
}

func overridesJSON(os []ratelimit.Override) []overrideJSON {
	out := make([]overrideJSON, 0, len(os))
	for _, o := range os {
		out = append(out, toOverrideJSON(o))
	}
	return out
}

// rlTestResponse is GET /api/dev/rl-test's answer, fields in the order a
// map would sort them.
type rlTestResponse struct {
	Limit string `json:"limit"`
	OK    bool   `json:"ok"`
}

// handleRLTest is the limiter probe: the limit does all the work.
func (s *Server) handleRLTest() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A struct, not a map: the same bytes without a map and a sort per request.
		writeJSON(w, http.StatusOK, rlTestResponse{Limit: ratelimit.LimitRLTest, OK: true})
	})
}

// handleSecurePing answers a caller known by user and tenant.
func (s *Server) handleSecurePing() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := s.identityOf(w, r, true) // requireUserTenant has checked it
		writeJSON(w, http.StatusOK, map[string]any{"pong": true, "user": id.User, "tenant": id.Tenant})
	})
}

// requireUserTenant answers 400 unless the request carries a user and a
// tenant the identity rules believe; secure-ping needs both.
func (s *Server) requireUserTenant(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.identityOf(w, r, true)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		if id.User == "" || id.Tenant == "" {
			writeError(w, r, s.log, core.Errorf(core.CodeInvalid,
				"a user and a tenant are required (X-User-ID and X-Tenant-ID, from a trusted proxy)"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// tenantMetaResponse is a tenant's effective limits.
type tenantMetaResponse struct {
	Tenant string            `json:"tenant"`
	Limits []tenantLimitJSON `json:"limits"`
	Tiers  map[string]any    `json:"tiers"`
}

// publicOverrideJSON is an enforced override as the public tenant-meta
// shows it: what is in effect and until when, not who set it, how or when.
type publicOverrideJSON struct {
	Target        string     `json:"target"`
	Capacity      int        `json:"capacity"`
	WindowSeconds int64      `json:"window_seconds"`
	ExpiresAt     *time.Time `json:"expires_at"`
}

type tenantLimitJSON struct {
	limitJSON
	// Override is the override in force for the limit as this tenant's
	// traffic meets it, if any: the most specific of the tenant's key
	// (limit:tenant:T), the scope (limit:tenant) and the limit, for a limit
	// that applies a tenant scope always; for the others, the first of its
	// scopes' overrides (run:ip, then run:user), else the limit's own.
	Override *publicOverrideJSON `json:"override,omitempty"`
	// TenantOverride is the override that gives the tenant's requests a
	// bucket of their own, shared by all of them (limit:tenant:T, else
	// limit:tenant), and GlobalOverride the one that gives all the
	// limit's requests one bucket (limit:global): each a limit besides the
	// above, which a request must pass too. Absent while none is in force,
	// and then the scope does not apply.
	TenantOverride *publicOverrideJSON `json:"tenant_override,omitempty"`
	GlobalOverride *publicOverrideJSON `json:"global_override,omitempty"`
}

// enforcedOverride is the override in force for key (Limiter.Override) as
// the public tenant-meta shows it, nil when there is none or when it is a
// shadow one: a shadow override enforces nothing, and anyone may ask
// tenant-meta (that run:ip is in shadow mode tells an attacker per-IP
// limiting is off). Who set an override, how and when stays with the
// operators' routes (/api/obs/rate-limits, `refrakt limits get`).
func (s *Server) enforcedOverride(key string) *publicOverrideJSON {
	o, ok := s.limiter.Override(key)
	if !ok || o.Mode == ratelimit.ModeShadow {
		return nil
	}
	j := toOverrideJSON(o)
	return &publicOverrideJSON{Target: j.Target, Capacity: j.Capacity, WindowSeconds: j.WindowSeconds, ExpiresAt: j.ExpiresAt}
}

// handleTenantMeta answers the effective limits for ?tenant=T: the built-in
// policies with the enforced overrides in force, and the premium
// multiplier. The answer is the same for every caller, a token or none.
func (s *Server) handleTenantMeta() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := routeQuery(r, paramTenant)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		tenant := q.Get(paramTenant)
		if tenant == "" || len(tenant) > 200 {
			writeError(w, r, s.log, core.Errorf(core.CodeInvalid, "query parameter tenant is required (1 to 200 bytes)"))
			return
		}
		out := tenantMetaResponse{Tenant: tenant, Limits: []tenantLimitJSON{},
			Tiers: map[string]any{"premium_multiplier": s.cfg.PremiumMultiplier}}
		for _, l := range s.limiter.LimitSet().Limits {
			tl := tenantLimitJSON{limitJSON: toLimitJSON(l)}
			// The targets whose override the tenant's requests meet: its own
			// key under a tenant scope; otherwise each scope in turn (an
			// override of a scope, run:ip, applies to every request).
			// Override falls back to the scope's and the limit's own.
			var targets []string
			if slices.Contains(l.Scopes, ratelimit.ScopeTenant) {
				targets = []string{l.Name + ":tenant:" + tenant}
			} else {
				for _, sc := range l.Scopes {
					targets = append(targets, l.Name+":"+string(sc))
				}
				// The tenant and global scopes the limit applies on demand:
				// the override that puts each in force for this tenant.
				tl.TenantOverride = s.enforcedOverride(l.Name + ":tenant:" + tenant)
			}
			// No limit applies the global scope always (ratelimit.New
			// refuses one): it is in force by override alone.
			tl.GlobalOverride = s.enforcedOverride(l.Name + ":global:" + ratelimit.GlobalIdentity)
			for _, target := range targets {
				// A shadow override is passed over as none is: the entry
				// shows the next scope's enforced override, else the
				// limit's own policy.
				oj := s.enforcedOverride(target)
				if oj == nil {
					continue
				}
				tl.Override = oj
				// An override replaces the premium multiplier too: a premium
				// request gets the override's capacity.
				tl.Burst, tl.Rate, tl.WindowSeconds = oj.Capacity, oj.Capacity, oj.WindowSeconds
				tl.PremiumBurst, tl.PremiumRate = oj.Capacity, oj.Capacity
				break
			}
			out.Limits = append(out.Limits, tl)
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// limitsConfigResponse is GET /api/dev/rate-limits/config.
type limitsConfigResponse struct {
	Enabled   bool           `json:"enabled"`
	Limits    []limitJSON    `json:"limits"`
	Overrides []overrideJSON `json:"overrides"`
}

// handleLimitsConfigGet answers every limit and override, or with
// ?target=T only T's limit and the overrides related to T (that cover it or
// lie under it), as `refrakt limits get TARGET` shows them: filtered here,
// so that a client asking about one key does not download every override.
func (s *Server) handleLimitsConfigGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := routeQuery(r, "target")
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		set := s.limiter.LimitSet()
		target := q.Get("target")
		if target == "" {
			out := limitsConfigResponse{Enabled: set.Enabled, Limits: []limitJSON{}, Overrides: overridesJSON(s.limiter.Overrides())}
			for _, l := range set.Limits {
				out.Limits = append(out.Limits, toLimitJSON(l))
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		// Checked as set, unset and reset check it (limit, scope, identity),
		// with their messages: a key that cannot be one is a 400, not an
		// empty listing.
		t, err := s.limiter.ParseTarget(target)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		out := limitsConfigResponse{Enabled: set.Enabled, Limits: []limitJSON{}, Overrides: overridesJSON(s.limiter.OverridesOf(t.String()))}
		for _, l := range set.Limits {
			if l.Name == t.Limit {
				out.Limits = append(out.Limits, toLimitJSON(l))
			}
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// setOverrideRequest is POST /api/dev/rate-limits/config.
type setOverrideRequest struct {
	Target        string `json:"target"`
	Capacity      int    `json:"capacity"`
	WindowSeconds int    `json:"window_seconds"`
	TTLSeconds    *int   `json:"ttl_seconds,omitempty"`
	Mode          string `json:"mode,omitempty"`
	Origin        string `json:"origin,omitempty"`
}

// setOverrideResponse is the answer of POST /api/dev/rate-limits/config:
// the override stored, and a warning when it is not enforced (rate
// limiting is off), absent otherwise.
type setOverrideResponse struct {
	overrideJSON
	Warning string `json:"warning,omitempty"`
}

func (s *Server) handleLimitsConfigSet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req setOverrideRequest
		if err := decodeJSON(w, r, &req); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		// A field left out (or zero, which no field takes) is named as
		// missing, not judged as the 0 it decoded to.
		if err := requiredFields(req); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		// Bounded before they become Durations, which a huge number would
		// overflow.
		if maxW := int(ratelimit.MaxWindow / time.Second); req.WindowSeconds <= 0 || req.WindowSeconds > maxW {
			writeError(w, r, s.log, core.Errorf(core.CodeInvalid, "window_seconds must be a whole number from 1 to %d, got %d", maxW, req.WindowSeconds))
			return
		}
		var ttl time.Duration
		if req.TTLSeconds != nil {
			if maxT := int(ratelimit.MaxOverrideTTL / time.Second); *req.TTLSeconds <= 0 || *req.TTLSeconds > maxT {
				writeError(w, r, s.log, core.Errorf(core.CodeInvalid, "ttl_seconds must be a whole number from 1 to %d when given, got %d", maxT, *req.TTLSeconds))
				return
			}
			ttl = time.Duration(*req.TTLSeconds) * time.Second
		}
		origin := req.Origin
		if origin == "" {
			origin = "api"
		}
		o, err := s.limiter.SetOverride(r.Context(), ratelimit.Override{
			Target: req.Target, Capacity: req.Capacity, Window: time.Duration(req.WindowSeconds) * time.Second,
			Mode: req.Mode, Origin: origin,
		}, ttl)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		out := setOverrideResponse{overrideJSON: toOverrideJSON(o)}
		if !s.cfg.RateLimitEnabled {
			out.Warning = ratelimit.LimitingOffWarning
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// requiredFields names the first field of req that is missing: target,
// capacity and window_seconds have no default.
func requiredFields(req setOverrideRequest) error {
	switch {
	case req.Target == "":
		return core.Errorf(core.CodeInvalid, "field target is required: <limit>, <limit>:<scope> or <limit>:<scope>:<identity>")
	case req.Capacity == 0:
		return core.Errorf(core.CodeInvalid, "field capacity is required: a whole number from 1 to %d", ratelimit.MaxCapacity)
	case req.WindowSeconds == 0:
		return core.Errorf(core.CodeInvalid, "field window_seconds is required: a whole number from 1 to %d", int(ratelimit.MaxWindow/time.Second))
	}
	return nil
}

func (s *Server) handleLimitsConfigDelete() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := routeQuery(r, "target")
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		target := q.Get("target")
		if target == "" {
			writeError(w, r, s.log, core.Errorf(core.CodeInvalid, "query parameter target is required"))
			return
		}
		if err := s.limiter.DeleteOverride(r.Context(), target); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		// The target removed, as it was stored (run:ip:1.2.3.4 for
		// run:ip:::ffff:1.2.3.4), not as it was written.
		writeJSON(w, http.StatusOK, map[string]string{"deleted": ratelimit.CanonicalTarget(target)})
	})
}

// decodeKeyed decodes the body of a route on one bucket key into v, whose
// key field is *key: as decodeJSON, and the key is required.
func decodeKeyed(w http.ResponseWriter, r *http.Request, v any, key *string) error {
	if err := decodeJSON(w, r, v); err != nil {
		return err
	}
	if *key == "" {
		return core.Errorf(core.CodeInvalid, "field key is required: <limit>:<scope>:<identity>")
	}
	return nil
}

// resetRequest is POST /api/dev/rate-limits/reset.
type resetRequest struct {
	Key string `json:"key"`
}

func (s *Server) handleLimitsReset() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req resetRequest
		if err := decodeKeyed(w, r, &req, &req.Key); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		if err := s.limiter.Reset(r.Context(), req.Key); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"reset": ratelimit.CanonicalTarget(req.Key)})
	})
}

// banRequest is POST /api/dev/rate-limits/ban: ban one bucket key for
// Seconds (1 to 30 days).
type banRequest struct {
	Key     string `json:"key"`
	Seconds int64  `json:"seconds"`
}

// BanResponse is its answer: the key as keyed and the ban's end (the CLI
// prints it, over either driver).
type BanResponse struct {
	Banned      string    `json:"banned"`
	BannedUntil time.Time `json:"banned_until"`
	// Warning says the ban is not enforced: rate limiting is off.
	Warning string `json:"warning,omitempty"`
}

func (s *Server) handleLimitsBan() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req banRequest
		if err := decodeKeyed(w, r, &req, &req.Key); err != nil {
			writeError(w, r, s.log, err)
			return
		}
		maxSeconds := int64(ratelimit.MaxManualBan / time.Second)
		if req.Seconds < 1 || req.Seconds > maxSeconds {
			writeError(w, r, s.log, core.Errorf(core.CodeInvalid, "field seconds must be 1 to %d (30 days), got %d", maxSeconds, req.Seconds))
			return
		}
		key, until, err := s.limiter.Ban(r.Context(), req.Key, time.Duration(req.Seconds)*time.Second)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		// The end as the 429s say it: to the second, rounded up.
		s.log.Info("rate-limit key banned", "key", key, "until", ceilSecond(until).Format(time.RFC3339), "route", routeName(r))
		out := BanResponse{Banned: key, BannedUntil: until}
		if !s.cfg.RateLimitEnabled {
			out.Warning = ratelimit.BanLimitingOffWarning
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// rateLimitStateUnavailable is the 503 of a read of the limiter's state
// that the backend failed.
func rateLimitStateUnavailable(err error) error {
	return core.Wrap(core.CodeUnavailable, err, "rate-limit state is unavailable: "+core.ErrorMessage(err))
}

// bucketJSON is one bucket in GET /api/obs/rate-limits.
type bucketJSON struct {
	Key         string     `json:"key"`
	Limit       string     `json:"limit"`
	Scope       string     `json:"scope"`
	Capacity    int        `json:"capacity"`
	Remaining   int        `json:"remaining"`
	Strikes     int        `json:"strikes"`
	BannedUntil *time.Time `json:"banned_until"`
	LastSeen    time.Time  `json:"last_seen"`
}

// rateLimitsSnapshot is GET /api/obs/rate-limits.
type rateLimitsSnapshot struct {
	Enabled       bool         `json:"enabled"`
	Backend       string       `json:"backend"`
	Degraded      bool         `json:"degraded"`
	Buckets       []bucketJSON `json:"buckets"`
	Penalties     []bucketJSON `json:"penalties"`
	PenalizedKeys int          `json:"penalized_keys"`
	// Overrides are at most ?limit=N too (ratelimit.TopOverrides picks
	// them); OverridesTotal counts all in force, and is left out when
	// there are none.
	Overrides      []overrideJSON `json:"overrides"`
	OverridesTotal int            `json:"overrides_total,omitempty"`
}

func bucketsJSON(bs []ratelimit.BucketState) []bucketJSON {
	out := make([]bucketJSON, 0, len(bs))
	for _, b := range bs {
		limit, scope := b.LimitScope()
		out = append(out, bucketJSON{Key: b.Key, Limit: limit, Scope: scope, Capacity: b.Capacity, Remaining: b.Remaining,
			Strikes: b.Strikes, BannedUntil: core.UTCOrNil(b.BannedUntil), LastSeen: b.LastSeen.UTC()})
	}
	return out
}

// KeyStateResponse is GET /api/obs/rate-limits?key=K: one bucket's live
// state, and whether it is enforced, on which backend, from which store.
type KeyStateResponse struct {
	Enabled bool   `json:"enabled"`
	Backend string `json:"backend"`
	// Degraded says the backend is failing: the bucket is the local
	// store's, which decides meanwhile.
	Degraded bool         `json:"degraded"`
	Bucket   KeyStateJSON `json:"bucket"`
}

// KeyStateJSON is one bucket as the API and `refrakt limits get KEY -o
// json` show it (ratelimit.KeyState); times are RFC 3339 UTC, null when
// there is none, durations float seconds.
type KeyStateJSON struct {
	Key   string `json:"key"`
	Limit string `json:"limit"`
	Scope string `json:"scope"`
	// State is what the key's next request meets: fresh, allowed, limited,
	// shadow_limited, banned, or not_in_force (a tenant or global scope no
	// override puts in force: no policy, and zero figures).
	State  string         `json:"state"`
	Policy *KeyPolicyJSON `json:"policy"`
	// Capacity is after penalties (a banned key: the one its ban answers);
	// Remaining the tokens the next request finds.
	Capacity          int        `json:"capacity"`
	Remaining         int        `json:"remaining"`
	Strikes           int        `json:"strikes"`
	BannedUntil       *time.Time `json:"banned_until"`
	RetryAfterSeconds float64    `json:"retry_after_seconds"`
	ResetAfterSeconds float64    `json:"reset_after_seconds"`
	LastSeen          *time.Time `json:"last_seen"`
	LastStrikeAt      *time.Time `json:"last_strike_at"`
	LastBanAt         *time.Time `json:"last_ban_at"`
	Now               time.Time  `json:"now"`
}

// KeyPolicyJSON is the policy in force for one bucket: an override's
// (Override names its target) or the limit's own (the standard tier's).
type KeyPolicyJSON struct {
	Burst         int     `json:"burst"`
	Rate          int     `json:"rate"`
	WindowSeconds float64 `json:"window_seconds"`
	Mode          string  `json:"mode"`
	Override      *string `json:"override"`
}

// KeyStateOf is st as the API shows it; `limits get --redis` prints it too.
func KeyStateOf(st ratelimit.KeyState) KeyStateJSON {
	at := core.UTCOrNil
	out := KeyStateJSON{Key: st.Key, Limit: st.Limit, Scope: string(st.Scope), State: st.Outcome(),
		Capacity: st.Capacity, Remaining: st.Remaining, Strikes: st.Strikes,
		RetryAfterSeconds: float64(st.RetryAfter) / 1e6, ResetAfterSeconds: float64(st.ResetAfter) / 1e6,
		LastSeen: at(st.LastSeen), LastStrikeAt: at(st.LastStrike), LastBanAt: at(st.LastBan), Now: st.Now.UTC()}
	if st.BannedUntil > 0 {
		out.BannedUntil = at(time.UnixMicro(st.BannedUntil))
	}
	if st.InForce {
		p := &KeyPolicyJSON{Burst: st.Policy.Burst, Rate: st.Policy.Rate, WindowSeconds: st.Policy.Window.Seconds(), Mode: ratelimit.ModeEnforce}
		if st.Shadow {
			p.Mode = ratelimit.ModeShadow
		}
		if st.Override != nil {
			p.Override = &st.Override.Target
		}
		out.Policy = p
	}
	return out
}

// handleRateLimitsSnapshot answers the busiest buckets (?limit=N, default
// 50, at most 1000), the penalized ones and the overrides, each list at
// most N long; with ?key=K instead, one bucket's live state (KeyStateResponse),
// read without spending or changing anything.
func (s *Server) handleRateLimitsSnapshot() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := routeQuery(r, "limit", "key")
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		if key, ok := q.Lookup("key"); ok {
			if _, both := q.Lookup("limit"); both {
				writeError(w, r, s.log, core.Errorf(core.CodeInvalid, "key and limit do not combine: key answers one bucket, limit bounds the lists of the snapshot"))
				return
			}
			st, err := s.limiter.Peek(r.Context(), key)
			if err != nil {
				if core.ErrorCode(err) != core.CodeInvalid {
					err = rateLimitStateUnavailable(err)
				}
				writeError(w, r, s.log, err)
				return
			}
			writeJSON(w, http.StatusOK, KeyStateResponse{Enabled: s.cfg.RateLimitEnabled, Backend: s.backend.Kind,
				Degraded: st.Degraded, Bucket: KeyStateOf(st)})
			return
		}
		n := 50
		if v := q.Get("limit"); v != "" {
			if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 1000 {
				writeError(w, r, s.log, core.Errorf(core.CodeInvalid, "limit must be a whole number from 1 to 1000, got %q", v))
				return
			}
		}
		snap, err := s.limiter.Snapshot(r.Context(), n)
		if err != nil {
			writeError(w, r, s.log, rateLimitStateUnavailable(err))
			return
		}
		writeJSON(w, http.StatusOK, rateLimitsSnapshot{
			Enabled: s.cfg.RateLimitEnabled, Backend: s.backend.Kind, Degraded: snap.Degraded,
			Buckets: bucketsJSON(snap.Buckets), Penalties: bucketsJSON(snap.Penalties),
			PenalizedKeys: snap.PenalizedKeys, Overrides: overridesJSON(ratelimit.TopOverrides(snap.Overrides, n)),
			OverridesTotal: len(snap.Overrides),
		})
	})
}
