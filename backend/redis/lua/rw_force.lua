-- End every read and write lease of a resource, whoever holds them, and
-- wake the waiters. KEYS[1] writer key, KEYS[2] readers ZSET; ARGV[1] wake
-- channel, ARGV[2] wake payload. Writer intents stay: their writers still
-- wait. Returns 1 when there was a live lease, else 0.
local t = now()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', t)
local n = redis.call('DEL', KEYS[1], KEYS[2])
if n > 0 then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
  return 1
end
return 0
