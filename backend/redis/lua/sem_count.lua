-- The number of live permits. KEYS[1] permits ZSET.
local t = now()
return redis.call('ZCOUNT', KEYS[1], '(' .. t, '+inf')
