-- Resign. KEYS[1] leadership hash; ARGV[1] value, ARGV[2] changes
-- channel, ARGV[3] change payload. Returns 1 resigned, 0 nobody leads
-- (expired), -1 someone else leads.
local v = redis.call('HGET', KEYS[1], 'v')
if v == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
elseif v then
  return -1
end
return 0
