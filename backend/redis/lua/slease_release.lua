-- Release a lease held as a string key (a write lease): compare-and-delete
-- and wake. KEYS[1] lease key; ARGV[1] value, ARGV[2] wake channel,
-- ARGV[3] wake payload. Returns 1 released, 0 nobody holds it (expired),
-- -1 someone else holds it.
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
elseif v then
  return -1
end
return 0
