-- Owner-checked TTL of a leadership. KEYS[1] leadership hash; ARGV[1]
-- value. Returns {1, pttl}, {0, 0} nobody leads, {-1, 0} another leads.
local v = redis.call('HGET', KEYS[1], 'v')
if v == ARGV[1] then
  return {1, redis.call('PTTL', KEYS[1])}
elseif v then
  return {-1, 0}
end
return {0, 0}
