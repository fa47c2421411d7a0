-- KEYS[1] session; ARGV[1] number of fields to set, then that many
-- field, value pairs, then the fields to delete.
-- Returns 1 done, 0 missing (a missing session is never re-created).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local last = 2 * tonumber(ARGV[1]) + 1
local i = 2
while i <= last do -- one HSET per 500 fields (Lua's stack bounds unpack)
  local j = math.min(i + 999, last)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
while i <= #ARGV do
  local j = math.min(i + 999, #ARGV)
  redis.call('HDEL', KEYS[1], unpack(ARGV, i, j))
  i = j + 1
end
return 1
