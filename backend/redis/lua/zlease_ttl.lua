-- Owner-checked TTL of a ZSET-held lease. KEYS[1] the ZSET; ARGV[1] value.
-- Returns {1, ms left} when held, else {0, 0}.
local t = now()
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) <= t then
  return {0, 0}
end
return {1, tonumber(s) - t}
