-- Release a lease by handing it straight to the next waiter of the same
-- instance, in the release's one round trip: the lease key takes the
-- waiter's token and TTL, and a new fence is drawn (take(), from
-- lock_lib.lua, prepended to this script).
-- KEYS[1] lease key, KEYS[2] fence counter.
-- ARGV[1] releasing token, ARGV[2] the waiter's token, ARGV[3] its TTL in
-- milliseconds, ARGV[4] '1' when the instance yields this time to the
-- waiters of other instances, if any; ARGV[5] wake channel, ARGV[6] wake
-- payload, ARGV[7] handoff window in milliseconds (0: none), ARGV[8] how
-- many of the channel's subscribers are the releasing instance's own.
-- Yielding publishes the wake-up as lock_release.lua does: when it reached
-- a subscriber besides the releasing instance's own, the lease is released
-- (reserved for waiters for the window) instead of handed over.
-- Returns the new fence (> 0) when handed over; 0 nobody holds the lease
-- (it expired); -1 someone else holds it; -2 released, not handed over.
-- The delete comes first, as in lock_release.lua, so the release works
-- when memory is full (the writes after it are let through).
local v = redis.call('GET', KEYS[1])
if v ~= ARGV[1] then
  if v and v ~= '\0handoff' then
    return -1
  end
  return 0
end
redis.call('DEL', KEYS[1])
if ARGV[4] == '1' and redis.call('PUBLISH', ARGV[5], ARGV[6]) > tonumber(ARGV[8]) then
  if ARGV[7] ~= '0' then
    redis.pcall('SET', KEYS[1], '\0handoff', 'PX', ARGV[7])
  end
  return -2
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return take()
