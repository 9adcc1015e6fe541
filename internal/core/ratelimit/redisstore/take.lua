-- take.lua: rate-limit decisions, one per key, each atomic: ban check,
-- strike decay, penalized capacity, GCRA, strikes and bans. The loop body's
-- "decide" part is a line-by-line copy of ratelimit's Cell.Apply (gcra.go);
-- change both together.
--
-- One call decides many keys: the store coalesces concurrent decisions into
-- one call per round trip on a single Redis, and one call per hash slot on a
-- Redis Cluster, so a call never spans two slots there. The keys are decided
-- one after the other, each as if by a call of its own; a key may appear
-- more than once (concurrent requests on one key), each later decision
-- seeing the earlier ones. A call's fixed cost (EVALSHA, TIME, the
-- arguments) is paid once for all its keys.
--
-- KEYS[i]   a key's state, e.g. refrakt:rl:{run:ip:203.0.113.7}
-- ARGV[1]   everything else, packed in one string (one argument costs the
--           server less than many: each becomes a Lua string), numbers as
--           little-endian doubles (integers below 2^53, so exact):
--           "<Bddddddd": 1 when the next field is now (tests), 0 to use
--             Redis TIME (production); now, Unix µs; penalty factor;
--             strike decay, µs; strikes that ban (0: never); first ban, µs;
--             longest ban, µs; window in which a ban counts as a repeat, µs
--           then 25 bytes per key, in KEYS order, "<dddB": capacity (burst
--             before penalties), emission interval (µs per token), window
--             (µs), then a kind: 1 for a shadow bucket (never denies, never
--             strikes), plus 2 when the next key belongs to the same request,
--             plus 4 for a bucket that denies without striking (the global
--             scope's)
--
-- A request of several keys (scopes) is all or nothing, as in the memory
-- store: its keys are decided one after the other, and when any of them
-- denies, only the keys that denied are written (their strikes); the
-- others spend nothing. Their replies still say allowed, as decided.
--
-- Returns one string: now (a little-endian double), then a reply per key
-- in KEYS order, packed "<Bddddddd": flags (1 allowed, 2 shadowed,
-- 4 banned, 8 new ban), capacity, remaining, reset_after, retry_after,
-- strikes, banned_until, penalty_end; penalty_end is when the key's strikes
-- and ban are over (0 for none, -1 when a penalty just ended early). The
-- usual reply, allowed with no strikes and no penalty to record (no retry,
-- not banned, penalty_end 0 or past), is short: flags 17 (16 short, 1
-- allowed), then "<ddd" capacity, remaining, reset_after. One string costs
-- both sides less than arrays of integers, and each field packed costs the
-- server.
--
-- A key's state is one string of nine little-endian doubles: TAT, interval,
-- capacity (the burst, before penalties), strikes, strike time, banned
-- until, ban level, last ban start, last seen. One GET and one PSETEX cost
-- the server less than a hash's HMGET, HSET and PEXPIRE. PSETEX is SET PX
-- with no option to parse, and its TTL goes as a string formatted "%d": a
-- number argument costs the server a "%.17g" conversion, several times
-- dearer.

local args = ARGV[1]
local given, now, factor, decay, ban_after, ban_base, ban_max, repeat_window, pos = struct.unpack("<Bddddddd", args)
if given == 0 then
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local STATE, SPEC, REPLY, SHORT = "<ddddddddd", "<dddB", "<Bddddddd", "<Bddd"
local pack, unpack, call, ceil, floor, format = struct.pack, struct.unpack, redis.call, math.ceil, math.floor, string.format

-- Each key in turn: decide as Cell.Apply does, then save the state
-- with a TTL of when it no longer matters. One loop body rather than
-- functions: their closures and upvalues cost the server more than the
-- arithmetic.
local replies = {pack("<d", now)}
-- the writes of the request being decided, when it has several keys: key,
-- TTL, state and whether it allowed, four entries per key
local held, denied = nil, false
for i = 1, #KEYS do
  local key = KEYS[i]
  local capacity, iv, window, kind
  capacity, iv, window, kind, pos = unpack(SPEC, args, pos)
  local shadow = kind % 2
  local joined = kind % 4 >= 2
  local nopenalty = kind >= 4
  local tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban, seen = 0, 0, 0, 0, 0, 0, 0, 0, 0
  local raw = call("GET", key)
  if raw then
    tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban, seen = unpack(STATE, raw)
    if seen > now then
      -- the clock went back since the key's last decision (Cell.rebase)
      local d = now - seen
      if tat ~= 0 then tat = tat + d end
      if strike_at ~= 0 then strike_at = strike_at + d end
      if banned_until ~= 0 then banned_until = banned_until + d end
      if last_ban ~= 0 then last_ban = last_ban + d end
    end
  end
  local had = strikes > 0 or banned_until > now
  -- the strikes at now, decayed; the state keeps strikes and strike_at as
  -- the last strike left them (the decay is computed, never stored)
  local cur = strikes
  -- the reply: flags, capacity, remaining, reset after, retry after,
  -- banned until (strikes are the state's)
  local flags, eff, remaining, reset, retry, bu = 0, 0, 0, 0, 0, 0

  -- decide
  if banned_until > now and shadow == 0 then
    if tat > now and old_iv > 0 and old_iv ~= iv then
      tat = now + ceil((tat - now) * iv / old_iv)
    end
    old_iv = iv
    cap = capacity
    flags = 4
    retry = tat + iv - capacity * iv
    if banned_until > retry then retry = banned_until end
    retry = retry - now
    -- the capacity the key was banned at (Cell.banCapacity)
    local x = cap
    for _ = 1, ban_after - 1 do x = x * factor end
    eff = floor(x)
    if eff < 1 then eff = 1 end
    reset = tat - now
    if reset < 0 then reset = 0 end
    bu = banned_until
  else
    if strikes > 0 and decay > 0 then
      local k = floor((now - strike_at) / decay)
      if k >= strikes then
        cur = 0
      elseif k > 0 then
        cur = strikes - k
      end
    end
    eff = capacity
    if cur > 0 then
      local x = capacity
      for _ = 1, cur do
        x = x * factor
        if x < 1 then break end
      end
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
    cap = capacity

    if nxt - now <= limit then
      flags = 1
      remaining = floor((limit - (nxt - now)) / iv)
      reset = nxt - now
      local full = tat <= now
      tat = nxt
      if cur > 0 and full and now - strike_at >= window then
        cur = 0
        eff = capacity
        remaining = capacity - 1
      end
    else
      reset = tat - now
      if shadow == 1 or nopenalty then
        retry = nxt - now - limit
        if shadow == 1 then flags = 3 end
      else
        -- MaxStrikes (ratelimit/config.go) bounds them
        cur = cur + 1
        if cur > 250 then cur = 250 end
        strikes = cur
        strike_at = now
        if ban_after > 0 and cur >= ban_after then
          local level = 0
          if last_ban > 0 and now - banned_until < repeat_window then level = ban_level + 1 end
          local d = ban_base
          local n = 0
          while n < level and d < ban_max do
            d = d * 2
            n = n + 1
          end
          if d > ban_max then d = ban_max end
          banned_until = now + d
          last_ban = now
          ban_level = level
          strikes = 0
          strike_at = 0
          cur = 0
          flags = 12
          retry = nxt - now - capacity * iv
          if d > retry then retry = d end
        else
          local x = capacity
          for _ = 1, cur do
            x = x * factor
            if x < 1 then break end
          end
          local e = floor(x)
          if e < 1 then e = 1 end
          retry = nxt - now - e * iv
        end
        if banned_until > now then bu = banned_until end
      end
    end
  end

  if cur == 0 then
    strikes = 0
    strike_at = 0
  end
  -- save; pe is when the key's strikes and ban are over
  local pe = 0
  if strikes > 0 then pe = strike_at + strikes * decay end
  if banned_until > pe then pe = banned_until end
  local exp = tat
  if pe > exp then exp = pe end
  if last_ban > 0 and banned_until + repeat_window > exp then exp = banned_until + repeat_window end
  local ms = ceil((exp - now) / 1000)
  if ms < 1000 then ms = 1000 end
  if pe <= now and had then pe = -1 end

  if held == nil and not joined then
    call("PSETEX", key, format("%d", ms), pack(STATE, tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban, now))
    if flags == 1 and cur == 0 and pe >= 0 and pe <= now then
      replies[i + 1] = pack(SHORT, 17, eff, remaining, reset)
    else
      replies[i + 1] = pack(REPLY, flags, eff, remaining, reset, retry, cur, bu, pe)
    end
  else
    -- one key of a request of several: written, and answered, once the
    -- request is decided (twelve entries a key)
    held = held or {}
    local n = #held
    held[n + 1], held[n + 2], held[n + 3], held[n + 4] = i, key, format("%d", ms), pack(STATE, tat, old_iv, cap, strikes, strike_at, banned_until, ban_level, last_ban, now)
    held[n + 5], held[n + 6], held[n + 7], held[n + 8] = flags, eff, remaining, reset
    held[n + 9], held[n + 10], held[n + 11], held[n + 12] = retry, cur, bu, pe
    if flags % 2 == 0 then denied = true end
    if not joined then
      for j = 1, #held, 12 do
        local f, p = held[j + 4], held[j + 11]
        if not denied or f % 2 == 0 then
          call("PSETEX", held[j + 1], held[j + 2], held[j + 3])
        else
          -- not written: the key's strikes and ban are as stored, so its
          -- penalty's end is not to be recorded anew
          p = 0
        end
        if f == 1 and held[j + 9] == 0 and p >= 0 and p <= now then
          replies[held[j] + 1] = pack(SHORT, 17, held[j + 5], held[j + 6], held[j + 7])
        else
          replies[held[j] + 1] = pack(REPLY, f, held[j + 5], held[j + 6], held[j + 7], held[j + 8], held[j + 9], held[j + 10], p)
        end
      end
      held, denied = nil, false
    end
  end
end
return table.concat(replies)
