-- Owner-checked extend of a ZSET-held lease. KEYS[1] the ZSET; ARGV[1]
-- value, ARGV[2] new TTL in milliseconds. Returns 1 extended, 0 not held.
local t = now()
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) <= t then
  return 0
end
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[2]), ARGV[1])
zkeep(KEYS[1], ARGV[2])
return 1
