-- Shared by the read-write, semaphore and election scripts: now() is the
-- server clock in milliseconds (one clock for every decision; never a
-- client's). take() (lock_lib.lua) is prepended before this file.
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- zfirst returns the lowest score of the ZSET key (nil when empty).
local function zfirst(key)
  local z = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if z[2] then
    return tonumber(z[2])
  end
  return nil
end
-- zkeep keeps the ZSET key at least ms from now, the expiry of the member
-- just added or extended, so the set lasts as long as its last holder
-- and an abandoned set does not stay behind (never shortened: an extend
-- to a shorter TTL leaves it longer than needed, which is harmless).
local function zkeep(key, ms)
  local p = redis.call('PTTL', key)
  if p < tonumber(ms) then
    redis.call('PEXPIRE', key, ms)
  end
end
