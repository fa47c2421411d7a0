-- Release a lease in one round trip: compare-and-delete, and pass the
-- lease to the oldest waiter queued, if any.
-- KEYS[1] lease key, KEYS[2] waiter queue, KEYS[3] its flag (see
-- lock_queue.lua, prepended to this script; both absent: no queue); ARGV[1] token, ARGV[2] wake channel, ARGV[3] wake
-- payload (the instance ID), ARGV[4] handoff window in milliseconds (0:
-- none), ARGV[5] how many of the channel's subscribers are the releasing
-- instance's own ('0' or '1'; absent: '0').
-- Returns 1 released, 0 nobody holds it (expired), -1 someone else holds it.
--
-- With the queue keys: the releasing instance's own entry, if any, is
-- dropped (its waiters, if any, queue again at the back); when another
-- instance's waiters are queued, the lease is reserved for the oldest
-- entry (the key holds the handoff marker until the entry expires, see
-- lock_acquire.lua) and only that instance is woken; when none is,
-- nothing is published. Without it (a release in the
-- background, by the watchdog): the wake-up goes to every waiter, and
-- when it reached another instance's subscriber the key holds the
-- handoff marker for the window.
--
-- The delete is the script's first write: with maxmemory reached under
-- noeviction, Redis refuses a script's first write that may grow memory
-- (SET) but never a DEL, and once the script has written it lets the rest
-- through; the marker is set with pcall all the same, so a refused marker
-- leaves the lease released, only not reserved.
local v, queued
if KEYS[3] then
  local r = redis.call('MGET', KEYS[1], KEYS[3])
  v, queued = r[1], r[2]
else
  v = redis.call('GET', KEYS[1])
end
if v == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if KEYS[3] then
    if queued then
      local nowms = qnow()
      local _, _, mine, other, oexp = qscan(KEYS[2], nowms, ARGV[3])
      if mine then
        redis.call('ZREM', KEYS[2], mine)
      end
      if other then
        qreserve(KEYS[1], other, oexp, nowms, ARGV[2])
      else
        redis.call('DEL', KEYS[3]) -- nobody is queued now
      end
    end
  elseif redis.call('PUBLISH', ARGV[2], ARGV[3]) > tonumber(ARGV[5] or '0') and ARGV[4] ~= '0' then
    redis.pcall('SET', KEYS[1], '\0handoff', 'PX', ARGV[4])
  end
  return 1
elseif v and v ~= '\0handoff' then
  return -1
end
return 0
