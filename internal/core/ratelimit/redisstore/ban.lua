-- ban.lua: an operator's ban of one key, for ratelimit's Cell.Ban: the
-- key's ban ends at now + d, or at its own ban's end when that is later;
-- nothing else of its state changes (tokens, strikes, ban level, last ban),
-- so a manual ban does not lengthen the client's next automatic one. A key
-- with no state gets one that is only the ban. The state is the one
-- take.lua keeps (nine little-endian doubles), and take.lua refuses a key
-- whose banned_until is ahead, so this script changes no decision code.
--
-- KEYS[1]  a key's state, e.g. refrakt:rl:{run:ip:203.0.113.7}
-- ARGV[1]  the ban's length, µs
-- ARGV[2]  now, Unix µs, or 0 to use Redis TIME (production)
-- ARGV[3]  strike decay, µs (for the key's penalty end)
--
-- Returns {banned_until, penalty_end} as strings ("%d"): the ban's end, and
-- when the key's strikes and ban are over (for the penalized index).
-- The TTL becomes the larger of the key's and the ban's end.

local d, now, decay = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if now == 0 then
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local STATE = "<ddddddddd"
local tat, iv, cap, strikes, strike_at, banned_until, ban_level, last_ban, seen = 0, 0, 0, 0, 0, 0, 0, 0, now
local raw = redis.call("GET", KEYS[1])
if raw then
  tat, iv, cap, strikes, strike_at, banned_until, ban_level, last_ban, seen = struct.unpack(STATE, raw)
  if seen > now then
    -- the clock went back since the key's last decision (Cell.rebase)
    local s = now - seen
    if tat ~= 0 then tat = tat + s end
    if strike_at ~= 0 then strike_at = strike_at + s end
    if banned_until ~= 0 then banned_until = banned_until + s end
    if last_ban ~= 0 then last_ban = last_ban + s end
    seen = now
  end
end
if now + d > banned_until then banned_until = now + d end

local ms = math.ceil((banned_until - now) / 1000)
local ttl = redis.call("PTTL", KEYS[1])
if ttl > ms then ms = ttl end
redis.call("PSETEX", KEYS[1], string.format("%d", ms),
  struct.pack(STATE, tat, iv, cap, strikes, strike_at, banned_until, ban_level, last_ban, seen))

local pe = banned_until
if strikes > 0 and strike_at + strikes * decay > pe then pe = strike_at + strikes * decay end
return {string.format("%d", banned_until), string.format("%d", pe)}
