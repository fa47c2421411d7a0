-- Take a read lease.
-- KEYS[1] writer key, KEYS[2] fence counter, KEYS[3] readers ZSET (value
-- -> expiry, server ms), KEYS[4] writer intents ZSET (value -> expiry).
-- ARGV[1] value, ARGV[2] TTL in milliseconds.
-- Refused while a writer holds the resource or a writer's intent is live
-- (writer preference). Returns the fence (> 0) when taken, else -2 - the
-- wait hint in milliseconds (when the writer's lease or the earliest
-- intent ends; -1 unknown).
--
-- One TIME serves the reader's expiry and the fence. One EXISTS of the
-- writer key, the readers and the intents tells the paths apart: 0,
-- nobody at all (the common case: ZADD, PEXPIRE of the new set, the
-- fence's SET ... GET); 1 and the readers set has a PTTL, only readers
-- (the oldest reader is read, and expired readers pruned when it has
-- expired; PEXPIRE only when the set's expiry has to move); anything
-- else, a writer or an intent (live or not) may be there: the slow path
-- reads them, and prunes expired intents.
-- The writer key and the intents are in one hash slot with the others
-- (KEYS), so the three-key EXISTS works in a Cluster too.
-- The ZADD is the first write (see rw_lock.lua, memory full) but for the
-- pruning of expired intents or readers, which frees memory.
local tm = redis.call('TIME')
local t = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local m = tonumber(ARGV[2])
local n = redis.call('EXISTS', KEYS[1], KEYS[3], KEYS[4])
local rttl = -2 -- the readers set's PTTL (-2: no set, -1: no expiry)
if n > 0 then
  rttl = redis.call('PTTL', KEYS[3])
  if n > 1 or rttl == -2 then
    local pttl = redis.call('PTTL', KEYS[1])
    local first = zprune(KEYS[4], zfirst(KEYS[4]), t)
    if pttl ~= -2 or first then
      local hint = -1
      if pttl >= 0 then
        hint = pttl
      end
      if first and (hint < 0 or first - t < hint) then
        hint = first - t
      end
      return -2 - hint
    end
  end
  if rttl ~= -2 and not zprune(KEYS[3], zfirst(KEYS[3]), t) then
    rttl = -2 -- every reader had expired: the set is gone
  end
end
redis.call('ZADD', KEYS[3], t + m, ARGV[1])
-- Keep the set at least as long as this reader (zkeep in lease_now.lua):
-- a new set gets twice the TTL, so following readers with the same TTL
-- find it far enough and only read it.
if rttl < m then
  redis.call('PEXPIRE', KEYS[3], 2 * m)
end
return take(tm)
