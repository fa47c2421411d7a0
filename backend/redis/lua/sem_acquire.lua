-- Take a permit. KEYS[1] permits ZSET (value -> expiry, server ms; the one
-- source of truth), KEYS[2] fence counter. ARGV[1] value, ARGV[2] TTL in
-- milliseconds, ARGV[3] the caller's limit.
-- Returns the fence (> 0) when fewer than limit permits were live, else
-- -2 - the wait hint in milliseconds (when the earliest permit ends).
-- Expired permits are pruned only when the set is full: below the limit
-- they cannot refuse a permit, and the set lasts as long as its longest
-- entry anyway (zkeep).
local t, tm = now()
local limit = tonumber(ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
local first
if n >= limit then
  first = zprune(KEYS[1], zfirst(KEYS[1]), t)
  n = redis.call('ZCARD', KEYS[1])
end
if n < limit then
  redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[1])
  zkeep(KEYS[1], ARGV[2], n == 0)
  return take(tm)
end
return -2 - (first - t)
