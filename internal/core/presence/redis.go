package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// NewID returns a daemon's id: its host, its pid and a short random part,
// so that two daemons of one host and pid (a container restarted) differ.
func NewID(host string, pid int) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + ":" + strconv.Itoa(pid) + ":" + hex.EncodeToString(b[:])
}

// Store keeps the daemons' records on Redis (or a Redis Cluster), all in
// one hash tag so that every call is one script on one slot:
//
//	<prefix>daemons:{d}        sorted set: daemon id → its record's expiry (ms, Redis TIME)
//	<prefix>daemons:{d}:<id>   hash: rec (the Record as JSON, without last_seen),
//	                           seen (ms, Redis TIME); PX the TTL
//
// Entries of the index past their score are dropped on every write and
// every read, so a killed daemon's record is gone after its TTL from the
// list as from the keyspace.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewStore returns the store of the daemons on rdb, under prefix (REFRAKT_PREFIX).
func NewStore(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, prefix: prefix}
}

// IndexKey is the sorted set of the daemons' ids.
func (s *Store) IndexKey() string { return s.prefix + "daemons:{d}" }

// RecordKey is the key of daemon id's record.
func (s *Store) RecordKey(id string) string { return s.IndexKey() + ":" + id }

// nowMS is Redis TIME in milliseconds, the one clock of every daemon.
const nowMS = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// publishScript writes one heartbeat.
// KEYS[1] index, KEYS[2] the record; ARGV[1] id, ARGV[2] the record's JSON,
// ARGV[3] the TTL in ms. Returns Redis TIME in ms. The index lives as long
// as its longest-lived entry.
var publishScript = redis.NewScript(nowMS + `
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[2], 'rec', ARGV[2], 'seen', now)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(last[2]) - now)) end
return now
`)

// removeScript removes one daemon's record. KEYS[1] index, KEYS[2] the
// record; ARGV[1] id.
var removeScript = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('DEL', KEYS[2])
`)

// listScript reads every live record. KEYS[1] index; ARGV[1] the prefix of
// the records' keys. Returns {now, id1, rec1, seen1, id2, …}; an entry
// whose key holds something else than a record (a wrong type) is left
// out, and so is one whose key expired. A record that cannot be read
// otherwise (its slot being resharded: the key moved, ASK, TRYAGAIN)
// fails the list, which would else leave a live daemon out; the error
// names the record, not a redirection go-redis would follow.
var listScript = redis.NewScript(nowMS + `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {now}
for _, id in ipairs(ids) do
  local v = redis.pcall('HMGET', ARGV[1] .. id, 'rec', 'seen')
  if type(v) == 'table' and v.err ~= nil and string.sub(v.err, 1, 9) ~= 'WRONGTYPE' then
    return redis.error_reply('ERR daemon record ' .. id .. ' unreadable: ' .. v.err)
  end
  if type(v) == 'table' and v.err == nil and v[1] and v[2] then
    out[#out + 1] = id
    out[#out + 1] = v[1]
    out[#out + 1] = v[2]
  end
end
return out
`)

// nowScript reads Redis TIME on the index's master (one clock with the
// records' last_seen and the index's scores). KEYS[1] index.
var nowScript = redis.NewScript(nowMS + `return now`)

// Now is Redis TIME, by the clock the records' times are read with: a
// daemon takes its StartedAt from it, so that UP is one clock's.
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	ms, err := nowScript.Run(ctx, s.rdb, []string{s.IndexKey()}).Int64()
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(ms).UTC(), nil
}

// Publish writes rec for ttl, as of Redis TIME (its LastSeen is ignored).
func (s *Store) Publish(ctx context.Context, rec Record, ttl time.Duration) error {
	rec.LastSeen = time.Time{}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return publishScript.Run(ctx, s.rdb, []string{s.IndexKey(), s.RecordKey(rec.ID)}, rec.ID, b, max(ttl.Milliseconds(), 1)).Err()
}

// Remove deletes daemon id's record (a graceful stop).
func (s *Store) Remove(ctx context.Context, id string) error {
	return removeScript.Run(ctx, s.rdb, []string{s.IndexKey(), s.RecordKey(id)}, id).Err()
}

// List returns the live records and Redis TIME at the read. A record that
// does not decode (garbage under its key, a wrong type) is left out: one
// bad key never hides the others. One that cannot be read (its slot being
// resharded) fails the list: a daemon is never left out unsaid.
func (s *Store) List(ctx context.Context) ([]Record, time.Time, error) {
	v, err := listScript.Run(ctx, s.rdb, []string{s.IndexKey()}, s.RecordKey("")).Slice()
	if err != nil {
		return nil, time.Time{}, err
	}
	if len(v) == 0 {
		return nil, time.Time{}, fmt.Errorf("daemons list: empty answer")
	}
	ms, ok := v[0].(int64)
	if !ok {
		return nil, time.Time{}, fmt.Errorf("daemons list: unexpected time %v", v[0])
	}
	now := time.UnixMilli(ms).UTC()
	var recs []Record
	for i := 1; i+2 < len(v); i += 3 {
		id, _ := v[i].(string)
		raw, _ := v[i+1].(string)
		seenS, _ := v[i+2].(string)
		seen, err := strconv.ParseInt(seenS, 10, 64)
		if err != nil {
			continue
		}
		var r Record
		if json.Unmarshal([]byte(raw), &r) != nil || r.ID != id {
			continue
		}
		r.LastSeen = time.UnixMilli(seen).UTC()
		recs = append(recs, r)
	}
	return recs, now, nil
}
