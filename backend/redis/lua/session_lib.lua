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


-- num returns a meta field's number: 1 to 15 decimal digits (exact in a
-- Lua number), as the Go reader accepts; nil for anything else.
local function num(v)
  if type(v) ~= 'string' or #v < 1 or #v > 15 or string.find(v, '[^0-9]') then
    return nil
  end
  return tonumber(v)
end

-- valid_name reports whether s is a name as coord.ValidateName has it:
-- 1 to 512 bytes of valid UTF-8 without control characters.
local function valid_name(s)
  local n = #s
  if n == 0 or n > 512 then
    return false
  end
  if not string.find(s, '[^ -~]') then
    return true -- printable ASCII
  end
  local i = 1
  while i <= n do
    local c = string.byte(s, i)
    if c < 32 or c == 127 then
      return false
    elseif c < 128 then
      i = i + 1
    else
      local len, lo, hi = 0, 128, 191
      if c >= 194 and c <= 223 then
        len = 2
      elseif c >= 224 and c <= 239 then
        len = 3
        if c == 224 then lo = 160 elseif c == 237 then hi = 159 end
      elseif c >= 240 and c <= 244 then
        len = 4
        if c == 240 then lo = 144 elseif c == 244 then hi = 143 end
      else
        return false
      end
      if i + len - 1 > n then
        return false
      end
      local c2 = string.byte(s, i + 1)
      if c2 < lo or c2 > hi then
        return false
      end
      for j = i + 2, i + len - 1 do
        local cj = string.byte(s, j)
        if cj < 128 or cj > 191 then
          return false
        end
      end
      i = i + len
    end
  end
  return true
end

-- judge decides a session from its raw meta fields v (user, created,
-- last access, expires, deadline, idle TTL, data bytes) at now. It
-- returns 'missing' when key k does not exist, 'malformed' when a meta
-- field is missing or not what this package writes, 'expired' when its
-- expiry or deadline is not after now (the session is then deleted and
-- unindexed: h is its handle), or 'live' and the meta as numbers.
local function judge(k, h, now, v)
  if not (v[1] or v[2] or v[3] or v[4] or v[5] or v[6] or v[7]) and redis.call('EXISTS', k) == 0 then
    -- Also when the key vanished between two reads (an emulator may
    -- expire a key mid-script; Redis never does): missing.
    return 'missing'
  end
  local m = {u = v[1], c = num(v[2]), a = num(v[3]), e = num(v[4]), x = num(v[5]), i = num(v[6]), n = num(v[7])}
  if type(m.u) ~= 'string' or not valid_name(m.u) or not m.c or not m.a or not m.e or not m.x or not m.i or m.i < 1 then
    return 'malformed'
  end
  if v[7] and not m.n then
    return 'malformed'
  end
  if now >= m.e or (m.x > 0 and now >= m.x) then
    redis.call('DEL', k)
    unindex(m.u .. '\0' .. h)
    return 'expired'
  end
  return 'live', m
end

-- valid_field reports whether f is a field name a session may have: a
-- meta field ("_..."; those of a later version are ignored) or "d:" and
-- a data key.
local function valid_field(f)
  local c = string.byte(f, 1)
  if c == 95 then
    return true -- '_'
  end
  if c ~= 100 or string.byte(f, 2) ~= 58 then
    return false -- not 'd:'
  end
  if #f > 2 and #f <= 514 and not string.find(f, '[^ -~]', 3) then
    return true -- printable ASCII
  end
  return valid_name(string.sub(f, 3))
end

-- names_ok reports whether every field name of session k is one a
-- session may have (valid_field).
local function names_ok(k)
  for _, f in ipairs(redis.call('HKEYS', k)) do
    if not valid_field(f) then
      return false
    end
  end
  return true
end

-- load reads and judges the meta fields of session k (handle h), and
-- checks its field names (not its values, which only the Go reader
-- checks). The names are read only when the hash's field count differs
-- from "_f", the count the scripts that add or remove fields keep: a
-- field added by anything else, or a session without "_f", is checked
-- name by name. extra, when given, lists up to 500 more fields whose
-- values the same HMGET reads: the third result holds them from its 9th
-- entry on. The meta's "len" is the hash's field count.
local function load(k, h, now, extra)
  local v
  if extra then
    v = redis.pcall('HMGET', k, '_u', '_c', '_a', '_e', '_x', '_i', '_n', '_f', unpack(extra))
  else
    v = redis.pcall('HMGET', k, '_u', '_c', '_a', '_e', '_x', '_i', '_n', '_f')
  end
  if v.err then
    return 'malformed' -- not a hash
  end
  local len = redis.call('HLEN', k)
  if len > 0 and len ~= num(v[8]) and not names_ok(k) then
    return 'malformed'
  end
  local st, m = judge(k, h, now, v)
  if m then
    m.len = len
  end
  return st, m, v
end

-- meta_at maps each meta field name to its position in load's HMGET.
local meta_at = {_u = 1, _c = 2, _a = 3, _e = 4, _x = 5, _i = 6, _n = 7}

-- load_all reads session k (handle h) whole and judges it as load does;
-- a field that is neither a meta field ("_...") nor "d:" and a data key
-- makes it malformed too (every name is checked here, whatever "_f"
-- says: the reply is at hand). It returns the status, the meta, the flat
-- HGETALL reply and, by meta field name, the index of each value in it.
local function load_all(k, h, now)
  local all = redis.pcall('HGETALL', k)
  if all.err then
    return 'malformed'
  end
  local v, at = {}, {}
  for j = 1, #all, 2 do
    local f = all[j]
    local p = meta_at[f]
    if p then
      v[p] = all[j + 1]
      at[f] = j + 1
    elseif not valid_field(f) then
      return 'malformed'
    end
  end
  local st, m = judge(k, h, now, v)
  return st, m, all, at
end

-- code_map is the reply of a script that returns the session's fields
-- (read as a map) for a session that is not live: no fields (missing or
-- expired), or the one field "!" (malformed; no session has it).
local function code_map(st)
  if st == 'malformed' then
    return {'!', 'malformed'}
  end
  return {}
end

-- code is a script's reply for a session that is not live: nil
-- (missing or expired) or -1 (malformed).
local function code(st)
  if st == 'malformed' then
    return -1
  end
  return false
end

-- data_size returns the bytes of session k's data (keys without their
-- "d:" and values), as the "_n" field records them, or counted when it
-- is missing (a session written before the count was kept).
local function data_size(k, n)
  if n then
    return n
  end
  n = 0
  for _, f in ipairs(redis.call('HKEYS', k)) do
    if string.sub(f, 1, 2) == 'd:' then
      n = n + #f - 2 + redis.call('HSTRLEN', k, f)
    end
  end
  return n
end

-- SESS is the prefix of the session keys ("<prefix>{s}:s:"), from the
-- expiry index's name ("<prefix>{s}:exp"); the same hash slot.
local SESS = string.sub(EXP, 1, #EXP - 3) .. 's:'

-- prune unindexes up to limit sessions that expired before now. A
-- session key still there whose own record has expired too (a key
-- without a TTL: written by another tool, or restored without one) is
-- deleted.
local function prune(now, limit)
  local old = redis.call('ZRANGEBYSCORE', EXP, '-inf', '(' .. ms(now), 'LIMIT', 0, limit)
  for _, m in ipairs(old) do
    local k = SESS .. string.sub(m, -32)
    local v = redis.pcall('HMGET', k, '_e', '_x')
    if not v.err then
      local e, x = num(v[1]), num(v[2])
      if e and x and (now >= e or (x > 0 and now >= x)) then
        redis.call('DEL', k)
      end
    end
    unindex(m)
  end
  return #old
end

-- index sets the expiry score of user u's session h to e in the index,
-- and indexes it whole (created at c) when it was not indexed (written
-- by another tool), as Create would have.
local function index(u, h, e, c)
  local mem = u .. '\0' .. h
  if redis.call('ZADD', EXP, ms(e), mem) == 1 then
    redis.call('ZADD', BYUSER, 0, mem)
    redis.call('ZADD', CREATED, ms(c), mem)
    redis.call('HINCRBY', USERS, u, 1)
  end
end
