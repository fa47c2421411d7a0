-- KEYS[1] lease key. Returns 1 when someone holds the lease, else 0 (a
-- handoff marker is no lease).
local v = redis.call('GET', KEYS[1])
if v and v ~= '\0handoff' then
  return 1
end
return 0
