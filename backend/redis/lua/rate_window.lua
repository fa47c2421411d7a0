-- An exact sliding window rate limit decision in one round trip, on the
-- server clock: never more than Rate events in any window of Period.
-- KEYS[1] a ZSET of the events in the window, scored by the server time
-- of each in microseconds (TIME); ARGV[1] Rate, ARGV[2] Period in
-- microseconds, ARGV[3] n, ARGV[4] '1' to record, '0' to peek.
-- Returns {allowed (1/0), remaining, retry_after_us, reset_after_us}.
--
-- An event at time s is in the window of now while s > now − Period. n
-- events pass when the window holds at most Rate − n; each is a member
-- "now:i" with i past the window's count, unique since the count only
-- grows within one microsecond. The key expires (PX) a Period after its
-- newest event (ResetAfter, read from it, is rounded up to the
-- millisecond). A denied request waits until enough of the oldest events
-- leave the window. A key that is not a ZSET (a foreign writer) is an
-- error: WRONGTYPE.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - period))
local count = redis.call('ZCARD', KEYS[1])
-- The key expires a Period after its newest event: its PTTL (rounded up
-- to the millisecond when set) is the time until the window is empty.
local function reset_after()
  if count == 0 then
    return 0
  end
  return math.max(redis.call('PTTL', KEYS[1]), 0) * 1000
end
if count + n > rate then
  -- The (count + n − rate)-th oldest event must leave first.
  local k = count + n - rate
  local e = redis.call('ZRANGE', KEYS[1], k - 1, k - 1, 'WITHSCORES')
  return {0, rate - count, tonumber(e[2]) + period - now, reset_after()}
end
if ARGV[4] ~= '1' then
  return {1, rate - count, 0, reset_after()}
end
-- ZADD in chunks: unpack of a large table overflows Lua's C stack.
local stamp = string.format('%.0f', now)
local i = 1
if n == 1 then
  redis.call('ZADD', KEYS[1], stamp, stamp .. ':' .. (count + 1))
  i = 2
end
while i <= n do
  local args = {}
  while #args < 200 and i <= n do
    args[#args + 1] = stamp
    args[#args + 1] = stamp .. ':' .. (count + i)
    i = i + 1
  end
  redis.call('ZADD', KEYS[1], unpack(args))
end
redis.call('PEXPIRE', KEYS[1], math.ceil(period / 1000))
return {1, rate - count - n, 0, period}
