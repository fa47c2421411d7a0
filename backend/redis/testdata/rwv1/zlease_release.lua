-- Release a lease held as a member of a ZSET scored by its expiry (a read
-- lease, a permit). KEYS[1] the ZSET, KEYS[2] (a read lease) the writer
-- intents ZSET; ARGV[1] value, ARGV[2] wake channel, ARGV[3] wake payload,
-- ARGV[4] '1' to wake only when a writer waits (a waiting writer always
-- has a live intent: it renews it at each try) and the set is left
-- without a live reader (the last reader), else '0' (a permit: always).
-- Returns 1 released, 0 not held (expired or ended by force).
local t = now()
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(s) <= t then
  return 0
end
if ARGV[4] ~= '1' or (redis.call('ZCOUNT', KEYS[2], '(' .. t, '+inf') > 0
    and redis.call('ZCOUNT', KEYS[1], '(' .. t, '+inf') == 0) then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return 1
