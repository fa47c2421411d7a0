-- Take a permit. KEYS[1] permits ZSET (value -> expiry, server ms; the one
-- source of truth), KEYS[2] fence counter. ARGV[1] value, ARGV[2] TTL in
-- milliseconds, ARGV[3] the caller's limit.
-- Returns the fence (> 0) when fewer than limit permits were live, else
-- -2 - the wait hint in milliseconds (when the earliest permit ends).
local t = now()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[1])
  zkeep(KEYS[1], ARGV[2])
  return take()
end
local first = zfirst(KEYS[1])
if first then
  return -2 - (first - t)
end
return -1
