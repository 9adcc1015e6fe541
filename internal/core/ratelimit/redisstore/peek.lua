-- peek.lua: one key's state and the time of the server that holds it, for
-- ratelimit's Cell.Peek; it writes nothing (no token, no strike, no TTL, no
-- index entry). The time is that server's TIME, the one take.lua decides
-- the key with, so the state read agrees with the key's next decision (on a
-- Redis Cluster the call goes to the key's master, as a decision does).
--
-- KEYS[1]  a key's state, e.g. refrakt:rl:{run:ip:203.0.113.7}
--
-- Returns {seconds, microseconds, state}: TIME's two fields, then the
-- state string take.lua writes (nine little-endian doubles), or nil when
-- there is none.

local t = redis.call("TIME")
return {t[1], t[2], redis.call("GET", KEYS[1])}
