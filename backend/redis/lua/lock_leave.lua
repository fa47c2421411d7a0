-- Drop an instance's entry from a lease's waiter queue when its last
-- waiter stops waiting without the lease (lock_queue.lua is prepended).
-- KEYS[1] lease key, KEYS[2] waiter queue; ARGV[1] the instance ID,
-- ARGV[2] wake channel.
-- When the lease was reserved for that entry, it is reserved for the
-- next entry instead (and its instance woken), or released when none is
-- left. Returns 1 when an entry was dropped, else 0.
if redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
local nowms = qnow()
local head, _, mine, other, oexp = qscan(KEYS[2], nowms, ARGV[1])
if not mine then
  return 0
end
redis.call('ZREM', KEYS[2], mine)
if head == mine and redis.call('GET', KEYS[1]) == '\0handoff' then
  if other then
    qreserve(KEYS[1], other, oexp, nowms, ARGV[2])
  else
    redis.call('DEL', KEYS[1])
  end
end
return 1
