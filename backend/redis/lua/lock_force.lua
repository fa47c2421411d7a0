-- Delete a lease whoever holds it and wake its waiters.
-- KEYS[1] lease key; ARGV[1] wake channel, ARGV[2] wake payload
-- Returns 1 when there was a lease, else 0 (a handoff marker is no lease;
-- it is deleted too).
local v = redis.call('GET', KEYS[1])
if not v then
  return 0
end
redis.call('DEL', KEYS[1])
if v == '\0handoff' then
  return 0
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
