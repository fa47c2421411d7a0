-- Take leadership. KEYS[1] leadership hash {v = value, t = term},
-- KEYS[2] fence counter. ARGV[1] value ('<secret>.<instance ID>\n<identity>'),
-- ARGV[2] TTL in milliseconds, ARGV[3] changes channel, ARGV[4] change
-- payload. The term is the fence (take()). Publishes the change: the
-- payload, a newline and the term, so an observer learns of a leadership
-- even when it has ended by the time it could read it.
-- Returns the term (> 0), else -2 - the leader's PTTL (-1: no expiry).
if redis.call('EXISTS', KEYS[1]) == 0 then
  local f = take()
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 't', string.format('%.0f', f))
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PUBLISH', ARGV[3], ARGV[4] .. '\n' .. string.format('%.0f', f))
  return f
end
return -2 - redis.call('PTTL', KEYS[1])
