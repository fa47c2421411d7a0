-- Shared by the read-write, semaphore and election scripts: now() is the
-- server clock in milliseconds (one clock for every decision; never a
-- client's). take() (lock_lib.lua) is prepended before this file.
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- zlast returns the highest score of the ZSET key (nil when empty).
local function zlast(key)
  local z = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if z[2] then
    return tonumber(z[2])
  end
  return nil
end
-- zfirst returns the lowest score of the ZSET key (nil when empty).
local function zfirst(key)
  local z = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if z[2] then
    return tonumber(z[2])
  end
  return nil
end
-- zexpire keeps the ZSET key until its highest score (its last holder's
-- expiry), so an abandoned set does not stay behind.
local function zexpire(key)
  local last = zlast(key)
  if last then
    redis.call('PEXPIREAT', key, string.format('%.0f', last))
  end
end
