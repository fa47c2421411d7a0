-- KEYS[1] session; ARGV[1] number of fields to set, then that many
-- field, value pairs, then the fields to delete.
-- Returns 1 done, 0 missing (a missing session is never re-created).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local n = tonumber(ARGV[1])
for i = 2, 2 * n, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
for i = 2 * n + 2, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
return 1
