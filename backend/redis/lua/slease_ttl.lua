-- Owner-checked TTL of a string-key lease. KEYS[1] lease key; ARGV[1]
-- value. Returns {1, pttl} held, {0, 0} nobody holds it, {-1, 0} someone
-- else holds it.
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  return {1, redis.call('PTTL', KEYS[1])}
elseif v then
  return {-1, 0}
end
return {0, 0}
