-- Owner-checked extend of a leadership. KEYS[1] leadership hash; ARGV[1]
-- value, ARGV[2] new TTL in milliseconds. Returns as elect_release.lua.
local v = redis.call('HGET', KEYS[1], 'v')
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif v then
  return -1
end
return 0
