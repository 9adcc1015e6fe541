package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refrakt/refrakt/internal/core"
	"github.com/refrakt/refrakt/internal/core/ratelimit"
)

// storedOverride is an override's JSON in the overrides hash.
type storedOverride struct {
	Capacity  int    `json:"capacity"`
	WindowMS  int64  `json:"window_ms"`
	Mode      string `json:"mode"`
	ExpiresAt int64  `json:"expires_at_ms,omitempty"`
	Origin    string `json:"origin,omitempty"`
	CreatedAt int64  `json:"created_at_ms"`
}

// versionField is the overrides hash's field counting its changes
// (ratelimit.VersionedOverrides): every set and delete increments it in the
// transaction that makes the change. No target can be named so; readers of
// the hash skip it (its value is not an override's JSON, so a build that
// does not know it skips it too).
const versionField = "#version"

// overridesScan is how many fields one HSCAN asks for: a load of many
// overrides is many short commands, not one HGETALL that holds Redis (tens
// of thousands take it over 100 ms, every decision waiting meanwhile).
const overridesScan = 1000

var _ ratelimit.VersionedOverrides = (*Store)(nil)

// OverridesVersion implements ratelimit.VersionedOverrides.
func (s *Store) OverridesVersion(ctx context.Context) (int64, error) {
	v, err := s.rdb.HGet(ctx, s.keyOverrides, versionField).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, wrap(err, "read the overrides' version")
}

// Overrides implements ratelimit.Store.
func (s *Store) Overrides(ctx context.Context) ([]ratelimit.Override, error) {
	return s.scanOverrides(ctx, "", nil)
}

// scanOverrides reads the overrides of the fields that match (a glob; ""
// for all) with HSCAN, overridesScan at a time, keeping those keep accepts
// (nil: all) and appending them to out. HSCAN may return a field twice
// (while Redis rehashes the hash): the last value read wins.
func (s *Store) scanOverrides(ctx context.Context, match string, keep func(target string) bool, out ...ratelimit.Override) ([]ratelimit.Override, error) {
	seen := map[string]int{}
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, s.keyOverrides, cursor, match, overridesScan).Result()
		if err != nil {
			return nil, wrap(err, "list overrides")
		}
		for i := 0; i+1 < len(kv); i += 2 {
			target := kv[i]
			if target == versionField || keep != nil && !keep(target) {
				continue
			}
			o, ok := decodeOverride(target, kv[i+1])
			if !ok {
				continue
			}
			if j, ok := seen[target]; ok {
				out[j] = o
				continue
			}
			seen[target] = len(out)
			out = append(out, o)
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}

// decodeOverride reads an override from its field in the overrides hash;
// false for a value written by something else, not ours to interpret.
func decodeOverride(target, v string) (ratelimit.Override, bool) {
	var so storedOverride
	if json.Unmarshal([]byte(v), &so) != nil {
		return ratelimit.Override{}, false
	}
	o := ratelimit.Override{
		Target: target, Capacity: so.Capacity, Window: time.Duration(so.WindowMS) * time.Millisecond,
		Mode: so.Mode, Origin: so.Origin, CreatedAt: time.UnixMilli(so.CreatedAt).UTC(),
	}
	if so.ExpiresAt > 0 {
		o.ExpiresAt = time.UnixMilli(so.ExpiresAt).UTC()
	}
	return o, true
}

// OverridesOf lists the stored overrides ratelimit.Related to target (in
// its stored form, ratelimit.CanonicalTarget), expired ones included, in any
// order, without reading the others: the covering ones (target's limit, and
// its limit and scope) by name, those under target, unless it is a key, by
// a scan of the hash that Redis filters, so only they cross the network.
func (s *Store) OverridesOf(ctx context.Context, target string) ([]ratelimit.Override, error) {
	target = ratelimit.CanonicalTarget(target)
	covering := []string{target}
	// The prefixes before the first two colons only: the rest of a key is
	// its identity, which may hold colons (user a:b), and user a's key
	// does not cover user a:b's.
	for i := 0; i < len(target) && len(covering) < 3; i++ {
		if target[i] == ':' {
			covering = append(covering, target[:i])
		}
	}
	vals, err := s.rdb.HMGet(ctx, s.keyOverrides, covering...).Result()
	if err != nil {
		return nil, wrap(err, "list overrides")
	}
	var out []ratelimit.Override
	for i, v := range vals {
		if v, ok := v.(string); ok {
			if o, ok := decodeOverride(covering[i], v); ok {
				out = append(out, o)
			}
		}
	}
	if ratelimit.IsKey(target) {
		return out, nil // nothing lies under a key
	}
	return s.scanOverrides(ctx, globEscape(target)+":*", func(field string) bool { return ratelimit.Related(field, target) }, out...)
}

// globEscape quotes the characters special to Redis's glob patterns.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\*?[]^`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// SetOverride implements ratelimit.Store.
func (s *Store) SetOverride(ctx context.Context, o ratelimit.Override) error {
	so := storedOverride{
		Capacity: o.Capacity, WindowMS: o.Window.Milliseconds(), Mode: o.Mode,
		Origin: o.Origin, CreatedAt: o.CreatedAt.UnixMilli(),
	}
	if !o.ExpiresAt.IsZero() {
		so.ExpiresAt = o.ExpiresAt.UnixMilli()
	}
	b, err := json.Marshal(so)
	if err != nil {
		return err
	}
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, s.keyOverrides, o.Target, b)
	pipe.HIncrBy(ctx, s.keyOverrides, versionField, 1)
	pipe.Publish(ctx, s.chanOverrides, o.Target)
	return wrap(txErr(pipe.Exec(ctx)), "set override")
}

// DeleteOverride implements ratelimit.Store.
func (s *Store) DeleteOverride(ctx context.Context, target string) error {
	pipe := s.rdb.TxPipeline()
	del := pipe.HDel(ctx, s.keyOverrides, target)
	pipe.HIncrBy(ctx, s.keyOverrides, versionField, 1)
	pipe.Publish(ctx, s.chanOverrides, target)
	if err := txErr(pipe.Exec(ctx)); err != nil {
		return wrap(err, "delete override")
	}
	if del.Val() == 0 {
		return core.Errorf(core.CodeNotFound, "no override for %q", target)
	}
	return nil
}

// deleteExpiredScript deletes an override only if the one stored is
// expired at ARGV[2] (Unix ms), counting the change and announcing it as
// DeleteOverride does; a value that is not an override's JSON stays.
//
//	KEYS[1] the overrides hash  ARGV[1] target  ARGV[2] now, ms
//	ARGV[3] the change channel  ARGV[4] the version field
var deleteExpiredScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local ok, o = pcall(cjson.decode, v)
if not ok or type(o) ~= 'table' then return 0 end
local exp = tonumber(o.expires_at_ms)
if not exp or exp <= 0 or exp > tonumber(ARGV[2]) then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[1], ARGV[4], 1)
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
`)

// DeleteExpiredOverride implements ratelimit.Store.
func (s *Store) DeleteExpiredOverride(ctx context.Context, target string, now time.Time) error {
	err := deleteExpiredScript.Run(ctx, s.rdb, []string{s.keyOverrides}, target, now.UnixMilli(), s.chanOverrides, versionField).Err()
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	return wrap(err, "delete an expired override")
}

// WatchOverrides implements ratelimit.Store with a pub/sub subscription.
func (s *Store) WatchOverrides(ctx context.Context, changed func(overrides bool)) error {
	sub := s.rdb.Subscribe(ctx, s.chanOverrides)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		if isReplyErr(err) {
			// Refused (NOPERM: a user without the channel's rights), not
			// unreachable: asking again at once is refused again.
			return core.Wrap(core.CodeForbidden, err, "redis refused the subscription to override changes")
		}
		return wrap(err, "subscribe")
	}
	// Anything may have changed while we were not subscribed, a key reset
	// among them: the penalty ends and bans this store still has to record
	// of a key that is gone are a reset key's old ones.
	s.dropPendingOfGoneKeys(ctx)
	changed(true)
	ch := sub.Channel(redis.WithChannelHealthCheckInterval(5 * time.Second))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case msg, ok := <-ch:
			if !ok {
				return core.Errorf(core.CodeUnavailable, "redis: override subscription closed")
			}
			key, reset := strings.CutPrefix(msg.Payload, resetMessage)
			if reset {
				// A penalty end this store still has to record is the reset
				// key's old one: recorded after the reset, it would list the
				// key as penalized again until that end.
				s.forgetPenalty(key)
			}
			// A reset or a ban changes no override: only the cached bans go.
			changed(!reset && !strings.HasPrefix(msg.Payload, banMessage))
		}
	}
}
