-- Release a lease in one round trip: compare-and-delete, and wake waiters.
-- KEYS[1] lease key; ARGV[1] token, ARGV[2] wake channel, ARGV[3] wake
-- payload, ARGV[4] handoff window in milliseconds (0: none), ARGV[5] how
-- many of the channel's subscribers are the releasing instance's own ('0'
-- or '1'; absent: '0').
-- When the wake-up reached another instance's subscriber (a waiter), the
-- key holds the handoff marker for the window instead of being deleted
-- (see lock_acquire.lua).
-- Returns 1 released, 0 nobody holds it (expired), -1 someone else holds it.
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  if redis.call('PUBLISH', ARGV[2], ARGV[3]) > tonumber(ARGV[5] or '0') and ARGV[4] ~= '0' then
    redis.call('SET', KEYS[1], '\0handoff', 'PX', ARGV[4])
  else
    redis.call('DEL', KEYS[1])
  end
  return 1
elseif v and v ~= '\0handoff' then
  return -1
end
return 0
