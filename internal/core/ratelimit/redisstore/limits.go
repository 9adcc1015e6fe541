package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// limitsFormat is the version of storedLimits; a reader ignores any other,
// as if nothing were published.
const limitsFormat = 1

// storedLimits is the JSON of a ratelimit.LimitSet under <prefix>rl:limits.
type storedLimits struct {
	Format  int           `json:"format"`
	Enabled bool          `json:"enabled"`
	Limits  []storedLimit `json:"limits"`
}

type storedLimit struct {
	Name         string   `json:"name"`
	Scopes       []string `json:"scopes"`
	Burst        int      `json:"burst"`
	Rate         int      `json:"rate"`
	WindowMS     int64    `json:"window_ms"`
	PremiumBurst int      `json:"premium_burst"`
	PremiumRate  int      `json:"premium_rate"`
}

// PublishLimits stores p under <prefix>rl:limits for ttl, replacing what
// any daemon published before: with several daemons, the last writer wins.
// A daemon calls it periodically, so the key is gone ttl after the last
// daemon stopped. A client that reaches the state without a daemon
// (`refrakt limits get --redis`) shows it rather than what its own
// environment would build, which may differ from the daemons'.
func (s *Store) PublishLimits(ctx context.Context, p ratelimit.LimitSet, ttl time.Duration) error {
	sl := storedLimits{Format: limitsFormat, Enabled: p.Enabled, Limits: make([]storedLimit, 0, len(p.Limits))}
	for _, l := range p.Limits {
		scopes := make([]string, 0, len(l.Scopes))
		for _, sc := range l.Scopes {
			scopes = append(scopes, string(sc))
		}
		sl.Limits = append(sl.Limits, storedLimit{
			Name: l.Name, Scopes: scopes, Burst: l.Policy.Burst, Rate: l.Policy.Rate,
			WindowMS: l.Policy.Window.Milliseconds(), PremiumBurst: l.Premium.Burst, PremiumRate: l.Premium.Rate,
		})
	}
	b, err := json.Marshal(sl)
	if err != nil {
		return err
	}
	return wrap(s.rdb.Set(ctx, s.keyLimits, b, ttl).Err(), "publish limits")
}

// PublishedLimits returns the policy a daemon last published, and false
// when there is none: no daemon on this Redis published within the TTL, or
// the value is not one this version reads.
func (s *Store) PublishedLimits(ctx context.Context) (ratelimit.LimitSet, bool, error) {
	b, err := s.rdb.Get(ctx, s.keyLimits).Bytes()
	if errors.Is(err, redis.Nil) {
		return ratelimit.LimitSet{}, false, nil
	}
	if err != nil {
		return ratelimit.LimitSet{}, false, wrap(err, "read published limits")
	}
	var sl storedLimits
	if json.Unmarshal(b, &sl) != nil || sl.Format != limitsFormat {
		return ratelimit.LimitSet{}, false, nil // written by something else; not ours to interpret
	}
	out := ratelimit.LimitSet{Enabled: sl.Enabled, Limits: make([]ratelimit.TieredLimit, 0, len(sl.Limits))}
	for _, l := range sl.Limits {
		if l.Name == "" || l.WindowMS <= 0 {
			return ratelimit.LimitSet{}, false, nil
		}
		window := time.Duration(l.WindowMS) * time.Millisecond
		pl := ratelimit.TieredLimit{
			Limit: ratelimit.Limit{Name: l.Name, Scopes: make([]ratelimit.Scope, 0, len(l.Scopes)),
				Policy: ratelimit.Policy{Burst: l.Burst, Rate: l.Rate, Window: window}},
			Premium: ratelimit.Policy{Burst: l.PremiumBurst, Rate: l.PremiumRate, Window: window},
		}
		for _, sc := range l.Scopes {
			pl.Scopes = append(pl.Scopes, ratelimit.Scope(sc))
		}
		out.Limits = append(out.Limits, pl)
	}
	return out, true, nil
}
