-- Acquire a lease in one round trip.
-- KEYS[1] lease key, KEYS[2] fence counter, KEYS[3] waiter queue,
-- KEYS[4] its flag (same hash slot; see lock_lib.lua and lock_queue.lua).
-- ARGV[1] token, ARGV[2] TTL in milliseconds, ARGV[3] who asks: '0' a
-- try-once newcomer, '2' a newcomer that will wait, '1' a waiter (it
-- found the lease held before); ARGV[4] the instance ID, ARGV[5] the
-- lifetime of a queue entry in milliseconds ('0': no queue), ARGV[6] the
-- wake channel. A try-once newcomer passes only ARGV[1..3] and KEYS[1..2].
-- Returns the fence (> 0) when acquired; when the lease is held (or
-- reserved for another waiter), -2 - its PTTL (-1: no expiry).
--
-- A newcomer takes a free lease at once (SET NX PX). A release that
-- finds waiters queued leaves the key holding the handoff marker
-- ("\0handoff", never a token) for the oldest of them, until its entry
-- expires: only a waiter whose instance's entry is the oldest may take
-- it then. A refused waiter, or a refused newcomer that will wait, adds
-- its instance's entry to the queue (or renews it), and a waiter that
-- finds the lease free but another instance's entry older reserves the
-- lease for it and wakes it.
--
-- take() comes from lock_lib.lua, the queue functions from
-- lock_queue.lua, both prepended to this script.
local who = ARGV[3]
if who ~= '1' then
  if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return take()
  end
  if who == '0' or ARGV[5] == '0' then
    return -2 - redis.call('PTTL', KEYS[1])
  end
elseif ARGV[5] == '0' then
  if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return take()
  end
  if redis.call('GET', KEYS[1]) == '\0handoff' then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return take()
  end
  return -2 - redis.call('PTTL', KEYS[1])
end
local nowms, arrival = qnow()
local head, hexp, mine = qread(KEYS[3], nowms, ARGV[4])
-- The first write adds or renews this instance's entry: under maxmemory
-- (noeviction) Redis refuses it, so a try fails then as SET NX would.
local life = tonumber(ARGV[5])
if not mine then
  mine = arrival .. ARGV[4]
end
redis.call('ZADD', KEYS[3], nowms + life, mine)
qprune(KEYS[3], nowms)
if not head or mine < head then
  -- Renewed, or first in an empty queue: the oldest live entry now.
  head, hexp = mine, nowms + life
end
local v = redis.call('GET', KEYS[1])
if who == '1' and (not v or v == '\0handoff') and head == mine then
  redis.call('ZREM', KEYS[3], mine)
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return take()
end
local qttl = redis.call('PTTL', KEYS[3])
if qttl < life then
  redis.call('PEXPIRE', KEYS[3], life)
  qttl = life
end
redis.call('SET', KEYS[4], '1', 'PX', qttl)
if not v then
  -- Free, and another instance's entry is older: reserve it for that one.
  qreserve(KEYS[1], head, hexp, nowms, ARGV[6])
end
return -2 - redis.call('PTTL', KEYS[1])
