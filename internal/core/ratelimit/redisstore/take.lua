-- take.lua: rate-limit decisions, one per key, each atomic: ban check,
-- strike decay, penalized capacity, GCRA, strikes and bans. decide() is a
-- line-by-line copy of ratelimit.Evaluate (gcra.go); change both together.
--
-- One call decides several keys when the store coalesces concurrent
-- decisions of keys in one hash slot (in practice, one key hammered by
-- concurrent requests); the decisions are independent, and a call never
-- spans two slots, so it runs as it stands on a Redis Cluster.
--
-- KEYS[i]   a key's state, e.g. refrakt:rl:{run:ip:203.0.113.7}
-- ARGV[1]   now in Unix µs, or "" to use Redis TIME (production)
-- ARGV[2]   penalty factor
-- ARGV[3]   strike decay, µs
-- ARGV[4]   strikes that ban, 0 for never
-- ARGV[5]   first ban, µs
-- ARGV[6]   longest ban, µs
-- ARGV[7]   window in which a ban counts as a repeat, µs
-- then four per key i, from ARGV[8 + 4(i-1)]:
--           capacity (burst before penalties), emission interval (µs per
--           token), window (µs), "1" for a shadow bucket (never denies,
--           never strikes)
--
-- Returns one reply per key: {allowed, shadowed, banned, new_ban, capacity,
-- remaining, reset_after, retry_after, strikes, banned_until, now,
-- penalty_end}; penalty_end is when the key's strikes and ban are over (0
-- for none, -1 when a penalty just ended early).
--
-- A key's state is one string of nine little-endian doubles (all integers
-- below 2^53, so exact): TAT, interval, capacity, strikes, strike time,
-- banned until, ban level, last ban start, last seen. One GET and one SET PX
-- cost the server less than a hash's HMGET, HSET and PEXPIRE.

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
local FORMAT = "<ddddddddd"

local function penalty_end(strikes, strike_at, banned_until)
  local e = 0
  if strikes > 0 then e = strike_at + strikes * decay end
  if banned_until > e then e = banned_until end
  return e
end

-- save writes a key's state with a TTL of when it no longer matters, and
-- returns penalty_end for the reply (-1 when a penalty just ended early).
-- A plain function rather than a closure per key: less garbage per call.
local function save(key, had_penalty, tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban)
  local pe = penalty_end(strikes, strike_at, banned_until)
  local exp = tat
  if pe > exp then exp = pe end
  if last_ban > 0 and last_ban + repeat_window > exp then exp = last_ban + repeat_window end
  local ms = math.ceil((exp - now) / 1000)
  if ms < 1000 then ms = 1000 end
  redis.call("SET", key, struct.pack(FORMAT, tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban, now), "PX", ms)
  if pe <= now and had_penalty then return -1 end
  return pe
end

local function decide(key, capacity, iv, window, shadow)
  local tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban = 0, 0, 0, 0, 0, 0, 0, 0
  local raw = redis.call("GET", key)
  if raw then
    tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban = struct.unpack(FORMAT, raw)
  end
  local had = strikes > 0 or banned_until > now

  if banned_until > now and not shadow then
    local pe = save(key, had, tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban)
    local reset = tat - now
    if reset < 0 then reset = 0 end
    local c = cap
    if c < 1 then c = 1 end
    return {0, 0, 1, 0, c, 0, reset, banned_until - now, strikes, banned_until, now, pe}
  end

  if strikes > 0 and decay > 0 then
    local k = math.floor((now - strike_at) / decay)
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
    eff = math.floor(x)
    if eff < 1 then eff = 1 end
  end

  if tat > now and old_iv > 0 and old_iv ~= iv then
    tat = now + math.ceil((tat - now) * iv / old_iv)
  end
  local base = tat
  if now > base then base = now end
  local nxt = base + iv
  local limit = eff * iv
  old_iv = iv
  cap = eff

  if nxt - now <= limit then
    local remaining = math.floor((limit - (nxt - now)) / iv)
    local full = tat <= now
    tat = nxt
    if strikes > 0 and full and now - strike_at >= window then
      strikes = 0
      strike_at = 0
    end
    local pe = save(key, had, tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban)
    return {1, 0, 0, 0, eff, remaining, nxt - now, 0, strikes, 0, now, pe}
  end

  local retry = nxt - now - limit
  local reset = tat - now
  if shadow then
    local pe = save(key, had, tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban)
    return {1, 1, 0, 0, eff, 0, reset, retry, strikes, 0, now, pe}
  end

  strikes = strikes + 1
  strike_at = now
  local banned, new_ban = 0, 0
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
    banned, new_ban = 1, 1
    retry = d
  end
  local pe = save(key, had, tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban)
  local bu = 0
  if banned_until > now then bu = banned_until end
  return {0, 0, banned, new_ban, eff, 0, reset, retry, strikes, bu, now, pe}
end

local replies = {}
for i = 1, #KEYS do
  local a = 8 + 4 * (i - 1)
  replies[i] = decide(KEYS[i], tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3] == "1")
end
return replies
