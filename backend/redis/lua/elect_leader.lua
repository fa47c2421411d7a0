-- Read the leader: value, term and PTTL at one moment. KEYS[1] leadership
-- hash. Returns {value or false, term or false, pttl}.
local r = redis.call('HMGET', KEYS[1], 'v', 't')
return {r[1], r[2], redis.call('PTTL', KEYS[1])}
