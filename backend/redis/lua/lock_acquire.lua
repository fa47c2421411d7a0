-- Acquire a lease in one round trip.
-- KEYS[1] lease key, KEYS[2] fence counter (same hash slot; see lock_lib.lua)
-- ARGV[1] token, ARGV[2] TTL in milliseconds, ARGV[3] '1' when the caller
-- is a waiter (it found the lease held before), else '0'.
-- Returns the fence (> 0) when acquired; when the lease is held (or, for
-- a newcomer, reserved for a waiter), -2 - its PTTL (-1: no expiry).
--
-- A release that has waiters leaves the key holding the handoff marker
-- ("\0handoff", never a token) for a short window: only a waiter may take
-- it then, so the releaser, coming back at once, does not win the lease
-- it just handed over.
--
-- take() comes from lock_lib.lua, prepended to this script.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return take()
end
if ARGV[3] == '1' and redis.call('GET', KEYS[1]) == '\0handoff' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return take()
end
return -2 - redis.call('PTTL', KEYS[1])
