-- Shared by the read-write, semaphore and election scripts: now() is the
-- server clock in milliseconds (one clock for every decision; never a
-- client's), and the TIME reply it came from, for take(tm).
-- take() (lock_lib.lua) is prepended before this file.
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), t
end
-- zfirst returns the lowest score of the ZSET key (nil when empty).
local function zfirst(key)
  local z = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if z[2] then
    return tonumber(z[2])
  end
  return nil
end
-- zprune removes the entries of the ZSET key that expired by t, when its
-- lowest score (first, from zfirst) says there are any, and returns the
-- lowest score left (nil when none is): one ZRANGE on the common path
-- instead of a ZREMRANGEBYSCORE on every call.
local function zprune(key, first, t)
  if first and first <= t then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', t)
    return zfirst(key)
  end
  return first
end
-- zkeep keeps the ZSET key at least ms from now, the expiry of the member
-- just added or extended, so the set lasts as long as its last holder
-- and an abandoned set does not stay behind (never shortened: an extend
-- to a shorter TTL leaves it longer than needed, which is harmless).
-- When it has to move the expiry it sets twice ms, so that the following
-- calls with the same TTL find it far enough and write nothing (an
-- abandoned set lasts at most twice its last holder's TTL). fresh: the
-- set was empty before the member was added (it has no expiry yet).
local function zkeep(key, ms, fresh)
  local m = tonumber(ms)
  if fresh or redis.call('PTTL', key) < m then
    redis.call('PEXPIRE', key, 2 * m)
  end
end
