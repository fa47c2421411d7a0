-- KEYS[1] session, KEYS[2..5] the indexes; ARGV[1] handle.
-- Slides the idle expiry (capped by the deadline) and sets the last access.
-- Returns the session's fields; none when missing or expired (an expired
-- one is deleted and unindexed), only "!" when malformed (left as it is).
local now = now_ms()
local st, m, all, at = load_all(KEYS[1], ARGV[1], now)
if st ~= 'live' then
  return code_map(st)
end
local e = now + m.i
if m.x > 0 and e > m.x then
  e = m.x
end
local nows, es = ms(now), ms(e)
redis.call('HSET', KEYS[1], '_a', nows, '_e', es)
redis.call('PEXPIREAT', KEYS[1], es)
index(m.u, ARGV[1], e, m.c)
all[at._a], all[at._e] = nows, es
return all
