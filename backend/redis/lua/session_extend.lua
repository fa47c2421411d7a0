-- KEYS[1] session, KEYS[2..5] the indexes; ARGV[1] handle, ARGV[2] TTL ms.
-- Sets the expiry to now + TTL, capped by the deadline.
-- Returns 1 done, 0 missing, -1 malformed.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local v = redis.call('HMGET', KEYS[1], '_u', '_x')
if not v[1] and not v[2] and redis.call('EXISTS', KEYS[1]) == 0 then
  -- Gone between the two reads (an emulator may expire a key
  -- mid-script; Redis never does): missing, not malformed.
  return 0
end
local x = tonumber(v[2])
if not v[1] or not x then
  return -1
end
local now = now_ms()
local e = now + tonumber(ARGV[2])
if x > 0 and e > x then
  e = x
end
if e <= now then
  -- At its deadline: the session ends now.
  redis.call('DEL', KEYS[1])
  unindex(v[1] .. '\0' .. ARGV[1])
  return 0
end
redis.call('HSET', KEYS[1], '_e', ms(e))
redis.call('PEXPIREAT', KEYS[1], ms(e))
redis.call('ZADD', EXP, 'XX', ms(e), v[1] .. '\0' .. ARGV[1])
return 1
