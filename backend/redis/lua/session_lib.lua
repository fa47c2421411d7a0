-- Shared prelude of the session scripts (prepended to each of them).
-- KEYS[1] is the script's session key (or the expiry index when it has
-- none); KEYS[2] the expiry index (member -> expires at, ms), KEYS[3] the
-- per-user index (member -> 0, ordered by member), KEYS[4] the creation
-- index (member -> created at, ms), KEYS[5] the hash of live sessions per
-- user. A member is the user ID, a NUL byte and the session's handle.
-- The server clock (TIME) is the only clock.
local EXP, BYUSER, CREATED, USERS = KEYS[2], KEYS[3], KEYS[4], KEYS[5]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ms(n)
  return string.format('%.0f', n)
end

-- unindex removes member m from every index, and counts its session off
-- its user once.
local function unindex(m)
  if redis.call('ZREM', EXP, m) == 1 then
    redis.call('ZREM', BYUSER, m)
    redis.call('ZREM', CREATED, m)
    local u = string.sub(m, 1, #m - 33)
    if redis.call('HINCRBY', USERS, u, -1) <= 0 then
      redis.call('HDEL', USERS, u)
    end
  end
end

-- prune unindexes up to limit sessions that expired before now.
local function prune(now, limit)
  local old = redis.call('ZRANGEBYSCORE', EXP, '-inf', '(' .. ms(now), 'LIMIT', 0, limit)
  for _, m in ipairs(old) do
    unindex(m)
  end
  return #old
end
