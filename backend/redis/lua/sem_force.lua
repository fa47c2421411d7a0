-- End every permit and wake the waiters. KEYS[1] permits ZSET; ARGV[1]
-- wake channel, ARGV[2] wake payload. Returns how many live permits ended.
local t = now()
local n = redis.call('ZCOUNT', KEYS[1], '(' .. t, '+inf')
redis.call('DEL', KEYS[1])
if n > 0 then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return n
