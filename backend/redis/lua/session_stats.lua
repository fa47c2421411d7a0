-- ARGV[1] batch size. Unindexes up to a batch of expired sessions, then
-- returns {more, pruned, live sessions, users, oldest creation ms or -1};
-- more is 1 when a full batch was pruned (call again).
local batch = tonumber(ARGV[1])
local now = now_ms()
local pruned = prune(now, batch)
local more = 0
if pruned >= batch then
  more = 1
end
local oldest = redis.call('ZRANGE', CREATED, 0, 0, 'WITHSCORES')
local o = -1
if oldest[2] then
  o = tonumber(oldest[2])
end
return {more, pruned, redis.call('ZCOUNT', EXP, ms(now), '+inf'), redis.call('HLEN', USERS), o}
