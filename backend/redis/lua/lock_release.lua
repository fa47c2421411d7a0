-- Release a lease in one round trip: compare-and-delete, and wake waiters.
-- KEYS[1] lease key; ARGV[1] token, ARGV[2] wake channel, ARGV[3] wake
-- payload, ARGV[4] handoff window in milliseconds (0: none), ARGV[5] how
-- many of the channel's subscribers are the releasing instance's own ('0'
-- or '1'; absent: '0').
-- When the wake-up reached another instance's subscriber (a waiter), the
-- key holds the handoff marker for the window instead of being deleted
-- (see lock_acquire.lua).
-- Returns 1 released, 0 nobody holds it (expired), -1 someone else holds it.
--
-- The delete is the script's first write: with maxmemory reached under
-- noeviction, Redis refuses a script's first write that may grow memory
-- (SET) but never a DEL, and once the script has written it lets the rest
-- through; the marker is set with pcall all the same, so a refused marker
-- leaves the lease released, only not reserved.
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if redis.call('PUBLISH', ARGV[2], ARGV[3]) > tonumber(ARGV[5] or '0') and ARGV[4] ~= '0' then
    redis.pcall('SET', KEYS[1], '\0handoff', 'PX', ARGV[4])
  end
  return 1
elseif v and v ~= '\0handoff' then
  return -1
end
return 0
