-- KEYS[1] old session, KEYS[6] new session; ARGV[1] old handle,
-- ARGV[2] new handle. Moves the session (content, TTL, deadline) to the
-- new key and sets the last access.
-- Returns the new session's fields, nil when missing or expired (an
-- expired one is deleted and unindexed), -1 when malformed (left as it
-- is), -2 when the new key exists (left as it is too).
local now = now_ms()
local st, m, all, at = load_all(KEYS[1], ARGV[1], now)
if st ~= 'live' then
  return code(st)
end
if redis.call('EXISTS', KEYS[6]) == 1 then
  return -2
end
local nows = ms(now)
redis.call('RENAME', KEYS[1], KEYS[6])
redis.call('HSET', KEYS[6], '_a', nows)
local om, nm = m.u .. '\0' .. ARGV[1], m.u .. '\0' .. ARGV[2]
local e = m.e
if m.x > 0 and e > m.x then
  e = m.x
end
if redis.call('ZREM', EXP, om) == 0 then
  -- Not indexed (written by another tool): counted now, as Create does.
  redis.call('HINCRBY', USERS, m.u, 1)
end
redis.call('ZREM', BYUSER, om)
redis.call('ZREM', CREATED, om)
redis.call('ZADD', EXP, ms(e), nm)
redis.call('ZADD', BYUSER, 0, nm)
redis.call('ZADD', CREATED, ms(m.c), nm)
all[at._a] = nows
return all
