-- Release a lease by handing it straight to the next waiter of the same
-- instance, in the release's one round trip: the lease key takes the
-- waiter's token and TTL, and a new fence is drawn (take(), from
-- lock_lib.lua, prepended to this script, as is lock_queue.lua).
-- KEYS[1] lease key, KEYS[2] fence counter, KEYS[3] waiter queue.
-- ARGV[1] releasing token, ARGV[2] the waiter's token, ARGV[3] its TTL in
-- milliseconds, ARGV[4] '1' when the instance yields this time to the
-- waiters of other instances, if any; ARGV[5] wake channel, ARGV[6] the
-- instance ID.
-- The instance's own queue entry, if any, is dropped: its waiter holds
-- the lease now, and a waiter of it that is refused later queues again
-- at the back. Yielding, when another instance's entry is queued,
-- reserves the lease for the oldest such entry and wakes its instance
-- (as lock_release.lua does) instead of handing it over.
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
if redis.call('EXISTS', KEYS[3]) == 1 then
  local nowms = qnow()
  local _, _, mine, other, oexp = qscan(KEYS[3], nowms, ARGV[6])
  if mine then
    redis.call('ZREM', KEYS[3], mine)
  end
  if other and ARGV[4] == '1' then
    qreserve(KEYS[1], other, oexp, nowms, ARGV[5])
    return -2
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return take()
