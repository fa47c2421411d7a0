-- Release a read lease. KEYS[1] readers ZSET (P rw:{R}:r), KEYS[2]
-- writer intents ZSET; ARGV[1] value, ARGV[2] wake payload. The wake
-- channel, P rw:{R}:wake, is named from KEYS[1] when it is needed (not
-- sent with every release). Returns 1 released, 0 not held (expired, or
-- ended by force).
--
-- Expired readers go first (this one too, if it has expired): the ZREM
-- that follows then says whether this reader was still live, with no
-- ZSCORE. The last live reader to leave wakes a waiting writer (a waiting
-- writer always has a live intent: it renews it at each try); EXISTS of
-- the intents keeps ZCOUNT off the common path (no writer waits).
-- Only deletes, and a PUBLISH: never refused when memory is full.
-- The clock in milliseconds is built as a string (seconds, then the
-- first three of the six digits of microseconds): a Lua number passed to
-- redis.call would be formatted with snprintf on every release.
local tm = redis.call('TIME')
local t = tm[1] .. string.sub('00000' .. tm[2], -6, -4)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t)
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 and redis.call('EXISTS', KEYS[1]) == 0
    and redis.call('ZCOUNT', KEYS[2], '(' .. t, '+inf') > 0 then
  redis.call('PUBLISH', string.sub(KEYS[1], 1, -2) .. 'wake', ARGV[2])
end
return 1
