-- KEYS[1] old session, KEYS[6] new session; ARGV[1] old handle,
-- ARGV[2] new handle. Moves the session (content, TTL, deadline) to the
-- new key and sets the last access.
-- Returns the new session's fields, nil when missing, -1 when malformed,
-- -2 when the new key exists.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local v = redis.call('HMGET', KEYS[1], '_u', '_c', '_e')
if not v[1] and not v[2] and not v[3] and redis.call('EXISTS', KEYS[1]) == 0 then
  -- Gone between the two reads (an emulator may expire a key
  -- mid-script; Redis never does): missing, not malformed.
  return false
end
if not v[1] or not tonumber(v[2]) or not tonumber(v[3]) then
  return -1
end
if redis.call('EXISTS', KEYS[6]) == 1 then
  return -2
end
local now = now_ms()
redis.call('RENAME', KEYS[1], KEYS[6])
redis.call('HSET', KEYS[6], '_a', ms(now))
local om, nm = v[1] .. '\0' .. ARGV[1], v[1] .. '\0' .. ARGV[2]
redis.call('ZREM', EXP, om)
redis.call('ZADD', EXP, v[3], nm)
redis.call('ZREM', BYUSER, om)
redis.call('ZADD', BYUSER, 0, nm)
redis.call('ZREM', CREATED, om)
redis.call('ZADD', CREATED, v[2], nm)
return redis.call('HGETALL', KEYS[6])
