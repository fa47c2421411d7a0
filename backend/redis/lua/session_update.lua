-- KEYS[1] session, KEYS[2..5] the indexes; ARGV[1] handle, ARGV[2] the
-- limit on the session's data in bytes, ARGV[3] number of fields to set,
-- then that many field, value pairs, then the fields to delete.
-- The session's data (keys without "d:", and values) may not exceed the
-- limit after the merge; "_n" keeps its size, so the check costs one
-- HSTRLEN per field merged (and a count of the whole hash before a
-- refusal).
-- Returns 1 done, 0 missing or expired (a missing session is never
-- re-created; an expired one is deleted and unindexed), -1 malformed
-- (left as it is), -2 over the limit (nothing changed).
local st, m = load(KEYS[1], ARGV[1], now_ms())
if st == 'malformed' then
  return -1
elseif st ~= 'live' then
  return 0
end
local d = 0 -- the merge's change in size
local last = 2 * tonumber(ARGV[3]) + 3
local i = 4
while i <= #ARGV do
  local f = ARGV[i]
  local old = redis.call('HSTRLEN', KEYS[1], f)
  if old > 0 then
    d = d - (#f - 2) - old
  end
  if i < last then
    d = d + #f - 2 + #ARGV[i + 1]
    i = i + 2
  else
    i = i + 1
  end
end
local n = data_size(KEYS[1], m.n) + d
if n > tonumber(ARGV[2]) and m.n then
  -- Refused by the recorded size: counted again before refusing, so a
  -- count left wrong (by an older version's Update) heals.
  n = data_size(KEYS[1], nil) + d
end
if n > tonumber(ARGV[2]) then
  return -2
end
i = 4
while i < last do -- one HSET per 500 fields (Lua's stack bounds unpack)
  local j = math.min(i + 999, last)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
while i <= #ARGV do
  local j = math.min(i + 999, #ARGV)
  redis.call('HDEL', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
redis.call('HSET', KEYS[1], '_n', ms(n))
return 1
