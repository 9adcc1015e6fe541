-- take.lua: one rate-limit decision for one key, atomically: ban check,
-- strike decay, penalized capacity, GCRA, strikes and bans. A line-by-line
-- copy of ratelimit.Evaluate (gcra.go); change both together.
--
-- KEYS[1]  the key's hash, e.g. refrakt:rl:{run:ip:203.0.113.7}
-- ARGV[1]  now in Unix µs, or "" to use Redis TIME (production)
-- ARGV[2]  capacity (burst before penalties)
-- ARGV[3]  emission interval, µs per token
-- ARGV[4]  window, µs
-- ARGV[5]  "1" for a shadow bucket (never denies, never strikes)
-- ARGV[6]  penalty factor
-- ARGV[7]  strike decay, µs
-- ARGV[8]  strikes that ban, 0 for never
-- ARGV[9]  first ban, µs
-- ARGV[10] longest ban, µs
-- ARGV[11] window in which a ban counts as a repeat, µs
--
-- Returns {allowed, shadowed, banned, new_ban, capacity, remaining,
-- reset_after, retry_after, strikes, banned_until, now, penalty_end};
-- penalty_end is when the key's strikes and ban are over (0 for none, -1
-- when a penalty just ended early).
-- The hash fields: t TAT, i interval, c capacity, s strikes, sa strike time,
-- bu banned until, bl ban level, lb last ban start, n last seen.

local now
if ARGV[1] == "" then
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local capacity = tonumber(ARGV[2])
local iv = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local shadow = ARGV[5] == "1"
local factor = tonumber(ARGV[6])
local decay = tonumber(ARGV[7])
local ban_after = tonumber(ARGV[8])
local ban_base = tonumber(ARGV[9])
local ban_max = tonumber(ARGV[10])
local repeat_window = tonumber(ARGV[11])

local f = redis.call("HMGET", KEYS[1], "t", "i", "c", "s", "sa", "bu", "bl", "lb")
local tat = tonumber(f[1]) or 0
local old_iv = tonumber(f[2]) or 0
local cap = tonumber(f[3]) or 0
local strikes = tonumber(f[4]) or 0
local strike_at = tonumber(f[5]) or 0
local banned_until = tonumber(f[6]) or 0
local ban_level = tonumber(f[7]) or 0
local last_ban = tonumber(f[8]) or 0

local had_penalty = strikes > 0 or banned_until > now

local function penalty_end()
  local e = 0
  if strikes > 0 then e = strike_at + strikes * decay end
  if banned_until > e then e = banned_until end
  return e
end

-- pe is penalty_end for the reply: -1 says a penalty just ended early (a
-- reset on sustained success), so the penalized index drops the key.
local function pe()
  local e = penalty_end()
  if e <= now and had_penalty then return -1 end
  return e
end

local function save()
  redis.call("HSET", KEYS[1], "t", tat, "i", old_iv, "c", cap, "s", strikes, "sa", strike_at,
    "bu", banned_until, "bl", ban_level, "lb", last_ban, "n", now)
  local exp = tat
  local pe = penalty_end()
  if pe > exp then exp = pe end
  if last_ban > 0 and last_ban + repeat_window > exp then exp = last_ban + repeat_window end
  local ms = math.ceil((exp - now) / 1000)
  if ms < 1000 then ms = 1000 end
  redis.call("PEXPIRE", KEYS[1], ms)
end

if banned_until > now and not shadow then
  redis.call("HSET", KEYS[1], "n", now)
  local reset = tat - now
  if reset < 0 then reset = 0 end
  local c = cap
  if c < 1 then c = 1 end
  return {0, 0, 1, 0, c, 0, reset, banned_until - now, strikes, banned_until, now, pe()}
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
  save()
  return {1, 0, 0, 0, eff, remaining, nxt - now, 0, strikes, 0, now, pe()}
end

local retry = nxt - now - limit
local reset = tat - now
if shadow then
  save()
  return {1, 1, 0, 0, eff, 0, reset, retry, strikes, 0, now, pe()}
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
save()
return {0, 0, banned, new_ban, eff, 0, reset, retry, strikes, banned_until > now and banned_until or 0, now, pe()}
