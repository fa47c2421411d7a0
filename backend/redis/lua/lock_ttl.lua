-- Owner-checked TTL.
-- KEYS[1] lease key; ARGV[1] token
-- Returns {1, pttl} when held by the token, {0, 0} when nobody holds it,
-- {-1, 0} when someone else holds it.
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  return {1, redis.call('PTTL', KEYS[1])}
elseif v and v ~= '\0handoff' then
  return {-1, 0}
end
return {0, 0}
