-- Read a read-write resource. KEYS[1] writer key, KEYS[2] readers ZSET,
-- KEYS[3] writer intents ZSET. Returns {live readers, writer held (0/1),
-- live intents}; expired entries count as gone (they are not removed:
-- this script only reads).
local t = now()
local w = redis.call('EXISTS', KEYS[1])
local r = redis.call('ZCOUNT', KEYS[2], '(' .. t, '+inf')
local q = redis.call('ZCOUNT', KEYS[3], '(' .. t, '+inf')
return {r, w, q}
