-- Take a read lease.
-- KEYS[1] writer key, KEYS[2] fence counter, KEYS[3] readers ZSET (value
-- -> expiry, server ms), KEYS[4] writer intents ZSET (value -> expiry).
-- ARGV[1] value, ARGV[2] TTL in milliseconds.
-- Refused while a writer holds the resource or a writer's intent is live
-- (writer preference). Returns the fence (> 0) when taken, else -2 - the
-- wait hint in milliseconds (when the writer's lease or the earliest
-- intent ends; -1 unknown).
-- Expired intents and readers are pruned only when the lowest score of
-- their set says there are some.
-- The writer key and the intents are in one hash slot with the others
-- (KEYS), so the two-key EXISTS works in a Cluster too.
local t = now()
-- Neither a writer nor an intent, live or not (the common case): one call.
local pttl, first = -2, nil
if redis.call('EXISTS', KEYS[1], KEYS[4]) > 0 then
  pttl = redis.call('PTTL', KEYS[1])
  first = zprune(KEYS[4], zfirst(KEYS[4]), t)
end
if pttl ~= -2 or first then
  local hint = -1
  if pttl >= 0 then
    hint = pttl
  end
  if first and (hint < 0 or first - t < hint) then
    hint = first - t
  end
  return -2 - hint
end
local oldest = zprune(KEYS[3], zfirst(KEYS[3]), t)
redis.call('ZADD', KEYS[3], t + tonumber(ARGV[2]), ARGV[1])
zkeep(KEYS[3], ARGV[2], not oldest)
return take()
