-- Take the write lease.
-- KEYS as rw_rlock.lua. ARGV[1] value, ARGV[2] TTL in milliseconds,
-- ARGV[3] how long a refused writer's intent lasts, in milliseconds (the
-- waiting writer renews it at each try).
-- Taken when no writer holds the resource and no read lease is live: the
-- writer key takes the value, the caller's intent goes. Else the intent is
-- recorded (or renewed), holding new readers back. Returns the fence
-- (> 0) when taken, else -2 - the wait hint in milliseconds (when the
-- writer's lease or the earliest read lease ends; -1 unknown).
--
-- Under maxmemory (noeviction) Redis refuses a script's first write that
-- may grow memory, but lets every write through once the script has run
-- any write command (even one that changed nothing): so the SET or ZADD
-- comes before any other write here, and a lease or intent asked for with
-- memory full is refused, not granted. (Pruning expired entries that are
-- there is such a write; it frees memory, and the try then completes.)
local t = now()
local first = zprune(KEYS[3], zfirst(KEYS[3]), t)
zprune(KEYS[4], zfirst(KEYS[4]), t)
local pttl = redis.call('PTTL', KEYS[1])
if pttl == -2 and not first then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('ZREM', KEYS[4], ARGV[1])
  return take()
end
redis.call('ZADD', KEYS[4], t + tonumber(ARGV[3]), ARGV[1])
zkeep(KEYS[4], ARGV[3])
local hint = -1
if pttl >= 0 then
  hint = pttl
elseif first then
  hint = first - t
end
return -2 - hint
