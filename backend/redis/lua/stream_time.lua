-- The server clock in milliseconds, read on the node that holds KEYS[1]
-- (a stream: in a Cluster, the clock its scripts will read).
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
