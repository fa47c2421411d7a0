-- KEYS[1] session, KEYS[2..5] the indexes; ARGV[1] handle.
-- Slides the idle expiry (capped by the deadline) and sets the last access.
-- Returns the session's fields, nil when missing, -1 when malformed.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local v = redis.call('HMGET', KEYS[1], '_u', '_i', '_x')
if not v[1] and not v[2] and not v[3] and redis.call('EXISTS', KEYS[1]) == 0 then
  -- Gone between the two reads (an emulator may expire a key
  -- mid-script; Redis never does): missing, not malformed.
  return false
end
local i, x = tonumber(v[2]), tonumber(v[3])
if not v[1] or not i or not x then
  return -1
end
local now = now_ms()
local e = now + i
if x > 0 and e > x then
  e = x
end
if e <= now then
  -- At its deadline: the session ends now.
  redis.call('DEL', KEYS[1])
  unindex(v[1] .. '\0' .. ARGV[1])
  return false
end
redis.call('HSET', KEYS[1], '_a', ms(now), '_e', ms(e))
redis.call('PEXPIREAT', KEYS[1], ms(e))
redis.call('ZADD', EXP, 'XX', ms(e), v[1] .. '\0' .. ARGV[1])
return redis.call('HGETALL', KEYS[1])
