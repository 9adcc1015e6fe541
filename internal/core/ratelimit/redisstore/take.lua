-- take.lua: rate-limit decisions, one per key, each atomic: ban check,
-- strike decay, penalized capacity, GCRA, strikes and bans. decide() is a
-- line-by-line copy of ratelimit.Evaluate (gcra.go); change both together.
--
-- One call decides many keys: the store coalesces concurrent decisions into
-- one call per round trip on a single Redis, and one call per hash slot on a
-- Redis Cluster, so a call never spans two slots there. The keys are decided
-- one after the other, each as if by a call of its own; a key may appear
-- more than once (concurrent requests on one key), each later decision
-- seeing the earlier ones. A call's fixed cost (EVALSHA, TIME, the
-- arguments' tables) is paid once for all its keys.
--
-- KEYS[i]   a key's state, e.g. refrakt:rl:{run:ip:203.0.113.7}
-- ARGV[1]   now in Unix µs, or "" to use Redis TIME (production)
-- ARGV[2]   penalty factor
-- ARGV[3]   strike decay, µs
-- ARGV[4]   strikes that ban, 0 for never
-- ARGV[5]   first ban, µs
-- ARGV[6]   longest ban, µs
-- ARGV[7]   window in which a ban counts as a repeat, µs
-- ARGV[8]   the keys' buckets, 25 bytes each in KEYS order, packed "<dddB":
--           capacity (burst before penalties), emission interval (µs per
--           token), window (µs), 1 for a shadow bucket (never denies, never
--           strikes)
--
-- Returns one string: now (a little-endian double), then 57 bytes per key
-- in KEYS order, packed "<Bddddddd": flags (1 allowed, 2 shadowed,
-- 4 banned, 8 new ban), capacity, remaining, reset_after, retry_after,
-- strikes, banned_until, penalty_end; penalty_end is when the key's strikes
-- and ban are over (0 for none, -1 when a penalty just ended early). Numbers
-- travel as doubles: all are integers below 2^53, so exact, and packing them
-- costs less than Redis's integer replies, on both sides.
--
-- A key's state is one string of nine little-endian doubles: TAT, interval,
-- capacity, strikes, strike time, banned until, ban level, last ban start,
-- last seen. One GET and one SET PX cost the server less than a hash's
-- HMGET, HSET and PEXPIRE.

local now
if ARGV[1] == "" then
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local factor = tonumber(ARGV[2])
local decay = tonumber(ARGV[3])
local ban_after = tonumber(ARGV[4])
local ban_base = tonumber(ARGV[5])
local ban_max = tonumber(ARGV[6])
local repeat_window = tonumber(ARGV[7])
local specs = ARGV[8]
local STATE, SPEC, REPLY = "<ddddddddd", "<dddB", "<Bddddddd"
local pack, unpack, call, ceil, floor = struct.pack, struct.unpack, redis.call, math.ceil, math.floor

-- save writes a key's state with a TTL of when it no longer matters, and
-- returns penalty_end for the reply (-1 when a penalty just ended early).
local function save(key, had_penalty, tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban)
  local pe = 0
  if strikes > 0 then pe = strike_at + strikes * decay end
  if banned_until > pe then pe = banned_until end
  local exp = tat
  if pe > exp then exp = pe end
  if last_ban > 0 and last_ban + repeat_window > exp then exp = last_ban + repeat_window end
  local ms = ceil((exp - now) / 1000)
  if ms < 1000 then ms = 1000 end
  call("SET", key, pack(STATE, tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban, now), "PX", ms)
  if pe <= now and had_penalty then return -1 end
  return pe
end

-- decide returns the reply fields of one decision on key.
local function decide(key, capacity, iv, window, shadow)
  local tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban = 0, 0, 0, 0, 0, 0, 0, 0
  local raw = call("GET", key)
  if raw then
    tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban = unpack(STATE, raw)
  end
  local had = strikes > 0 or banned_until > now

  if banned_until > now and not shadow then
    local pe = save(key, had, tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban)
    local reset = tat - now
    if reset < 0 then reset = 0 end
    local c = cap
    if c < 1 then c = 1 end
    return 4, c, 0, reset, banned_until - now, strikes, banned_until, pe
  end

  if strikes > 0 and decay > 0 then
    local k = floor((now - strike_at) / decay)
    if k >= strikes then
      strikes = 0
      strike_at = 0
    elseif k > 0 then
      strikes = strikes - k
      strike_at = strike_at + k * decay
    end
  end
  local eff = capacity
  if strikes > 0 then
    local x = capacity
    for _ = 1, strikes do x = x * factor end
    eff = floor(x)
    if eff < 1 then eff = 1 end
  end

  if tat > now and old_iv > 0 and old_iv ~= iv then
    tat = now + ceil((tat - now) * iv / old_iv)
  end
  local base = tat
  if now > base then base = now end
  local nxt = base + iv
  local limit = eff * iv
  old_iv = iv
  cap = eff

  if nxt - now <= limit then
    local remaining = floor((limit - (nxt - now)) / iv)
    local full = tat <= now
    tat = nxt
    if strikes > 0 and full and now - strike_at >= window then
      strikes = 0
      strike_at = 0
    end
    local pe = save(key, had, tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban)
    return 1, eff, remaining, nxt - now, 0, strikes, 0, pe
  end

  local retry = nxt - now - limit
  local reset = tat - now
  if shadow then
    local pe = save(key, had, tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban)
    return 3, eff, 0, reset, retry, strikes, 0, pe
  end

  strikes = strikes + 1
  strike_at = now
  local flags = 0
  if ban_after > 0 and strikes >= ban_after then
    local level = 0
    if last_ban > 0 and now - last_ban < repeat_window then level = ban_level + 1 end
    local d = ban_base
    local i = 0
    while i < level and d < ban_max do
      d = d * 2
      i = i + 1
    end
    if d > ban_max then d = ban_max end
    banned_until = now + d
    last_ban = now
    ban_level = level
    strikes = 0
    strike_at = 0
    flags = 12
    retry = d
  end
  local pe = save(key, had, tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban)
  local bu = 0
  if banned_until > now then bu = banned_until end
  return flags, eff, 0, reset, retry, strikes, bu, pe
end

local replies = {pack("<d", now)}
local pos = 1
for i = 1, #KEYS do
  local capacity, iv, window, shadow
  capacity, iv, window, shadow, pos = unpack(SPEC, specs, pos)
  replies[i + 1] = pack(REPLY, decide(KEYS[i], capacity, iv, window, shadow == 1))
end
return table.concat(replies)
