-- refund.lua: give back the token a request took from one key when another
-- scope of the same request denied it (the keys of different identities
-- are decided by separate scripts so that each touches one hash slot).
--
-- KEYS[1]  the key's hash
-- ARGV[1]  the emission interval the token was taken with, µs
--
-- Returns 1 when a token was returned, 0 when the bucket changed meanwhile.
local f = redis.call("HMGET", KEYS[1], "t", "i")
local tat = tonumber(f[1])
if tat == nil or tonumber(f[2]) ~= tonumber(ARGV[1]) then
  return 0
end
redis.call("HSET", KEYS[1], "t", tat - tonumber(ARGV[1]))
return 1
