-- Keeps the entries a consumer's handlers run alive: resets their idle
-- time without counting a delivery, so no other consumer claims them, and
-- marks the group live.
-- KEYS[1] stream, KEYS[2] group liveness. ARGV[1] group, ARGV[2] consumer,
-- ARGV[3..] the entry IDs. Returns the IDs no longer the consumer's.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now, ARGV[1])
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'RETRYCOUNT', p[1][4], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
