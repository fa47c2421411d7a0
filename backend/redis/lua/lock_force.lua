-- Delete a lease whoever holds it and wake its waiters.
-- KEYS[1] lease key; ARGV[1] wake channel, ARGV[2] wake payload
-- Returns 1 when there was a lease, else 0.
if redis.call('DEL', KEYS[1]) == 1 then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
  return 1
end
return 0
