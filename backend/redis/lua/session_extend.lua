-- KEYS[1] session, KEYS[2..5] the indexes; ARGV[1] handle, ARGV[2] TTL ms.
-- Sets the expiry to now + TTL, capped by the deadline.
-- Returns 1 done, 0 missing or expired (an expired one is deleted and
-- unindexed), -1 malformed (left as it is).
local now = now_ms()
local st, m = load(KEYS[1], ARGV[1], now)
if st == 'malformed' then
  return -1
elseif st ~= 'live' then
  return 0
end
local e = now + tonumber(ARGV[2])
if m.x > 0 and e > m.x then
  e = m.x
end
redis.call('HSET', KEYS[1], '_e', ms(e))
redis.call('PEXPIREAT', KEYS[1], ms(e))
index(m.u, ARGV[1], e, m.c)
return 1
