-- Release a permit by handing it straight to a waiter of the same
-- instance, in the release's one round trip: the releasing value leaves
-- the permits ZSET and the waiter's value enters it, with a new fence
-- (take()). The number of permits does not change, so nobody is woken.
-- KEYS[1] permits ZSET, KEYS[2] fence counter. ARGV[1] releasing value,
-- ARGV[2] the waiter's value, ARGV[3] its TTL in milliseconds.
-- Returns the new fence (> 0) when handed over, 0 when the releasing
-- permit was not live (expired or ended by force: nothing handed over).
local t, tm = now()
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(s) <= t then
  return 0
end
redis.call('ZADD', KEYS[1], t + tonumber(ARGV[3]), ARGV[2])
zkeep(KEYS[1], ARGV[3])
return take(tm)
