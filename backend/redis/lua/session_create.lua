-- KEYS[1] new session; ARGV[1] user, ARGV[2] handle, ARGV[3] idle TTL ms,
-- ARGV[4] lifetime ms (0: none), ARGV[5..] field, value pairs.
-- Returns {1, now, expires, deadline}, or {0} when the key exists (it is
-- left as it is, whoever wrote it).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0}
end
local now = now_ms()
prune(now, 16)
local idle, life = tonumber(ARGV[3]), tonumber(ARGV[4])
local x = 0
if life > 0 then
  x = now + life
end
local e = now + idle
if x > 0 and e > x then
  e = x
end
local nows, es = ms(now), ms(e)
local n = 0
for i = 5, #ARGV, 2 do
  n = n + #ARGV[i] - 2 + #ARGV[i + 1]
end
-- One HSET per 500 data fields (Lua's stack bounds unpack), the first
-- with the meta fields ("_f" counts the hash's fields: 8 of them, and the
-- data's).
local j = math.min(#ARGV, 1004)
redis.call('HSET', KEYS[1], '_u', ARGV[1], '_c', nows, '_a', nows, '_e', es, '_x', ms(x), '_i', ms(idle), '_n', ms(n), '_f', ms(8 + (#ARGV - 4) / 2), unpack(ARGV, 5, j))
while j < #ARGV do
  local i = j + 1
  j = math.min(i + 999, #ARGV)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, j))
end
redis.call('PEXPIREAT', KEYS[1], es)
local m = ARGV[1] .. '\0' .. ARGV[2]
redis.call('ZADD', EXP, es, m)
redis.call('ZADD', BYUSER, 0, m)
redis.call('ZADD', CREATED, nows, m)
redis.call('HINCRBY', USERS, ARGV[1], 1)
return {1, now, e, x}
