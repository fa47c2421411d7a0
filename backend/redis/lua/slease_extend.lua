-- Owner-checked extend of a string-key lease. KEYS[1] lease key; ARGV[1]
-- value, ARGV[2] new TTL in milliseconds. Returns 1 extended, 0 nobody
-- holds it, -1 someone else holds it.
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif v then
  return -1
end
return 0
