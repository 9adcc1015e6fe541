-- refund.lua: give back the token a request took from one key when another
-- scope of the same request denied it (the keys of different identities
-- are decided by separate scripts so that each touches one hash slot).
--
-- KEYS[1]  the key's state (see take.lua)
-- ARGV[1]  the emission interval the token was taken with, µs
--
-- Returns 1 when a token was returned, 0 when the bucket changed meanwhile.
local FORMAT = "<ddddddddd"
local raw = redis.call("GET", KEYS[1])
if not raw then
  return 0
end
local f = {struct.unpack(FORMAT, raw)}
local iv = tonumber(ARGV[1])
if f[2] ~= iv then
  return 0
end
local ttl = redis.call("PTTL", KEYS[1])
if ttl < 1 then ttl = 1000 end
redis.call("SET", KEYS[1], struct.pack(FORMAT, f[1] - iv, f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]), "PX", ttl)
return 1
