-- An exact sliding window rate limit decision in one round trip, on the
-- server clock: never more than Rate events in any window of Period.
-- KEYS[1] a ZSET of the events, scored by the server time of each in
-- microseconds (TIME), each member "time:i"; ARGV[1] Rate, ARGV[2]
-- Period in microseconds, ARGV[3] n, ARGV[4] '1' to record, '0' to peek.
-- Returns {allowed (1/0), remaining, retry_after_us, reset_after_us}.
--
-- An event at time s is in the window of now while s > now − Period.
-- n events pass when the window holds at most Rate − n: when the
-- (Rate − n + 1)-th newest event has left it or there is none. That
-- event, read by its rank (its time from its member's name, so that no
-- score is formatted), decides. A denial writes nothing and waits until
-- that event leaves the window; for n = 1 it reads nothing more but the
-- PTTL (its Remaining is 0: the window holds Rate events or more).
--
-- An allowed record adds its events first, so that the script's first
-- write is the ZADD, which Redis refuses with OOM when memory is full
-- (a trim before it would open the way: a script may finish what its
-- first write started). Then, when the key holds the deciding event, it
-- trims the events that left the window (so at most Rate − n remain
-- before the add, Rate after: the key never holds more than Rate
-- events); with none the key holds at most Rate − n events, left as
-- they are. The key expires (PX) a Period after its newest event;
-- ResetAfter of an older key is its PTTL (rounded up to the millisecond
-- when set). Members are unique: i is the lowest index free (ZADD NX)
-- for one event, past the window's count for more (the count at one
-- time only grows). A key that is not a ZSET (a foreign writer) is an
-- error: WRONGTYPE.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local edge = now - period
-- For n = 1, the event before the deciding one too: there is one when
-- the key holds more than Rate events (a lower limit than the one that
-- wrote them).
local r
if n == 1 then
  r = redis.call('ZRANGE', key, -rate - 1, -rate)
else
  r = redis.call('ZRANGE', key, n - rate - 1, n - rate - 1)
end
-- The deciding event's time, from its member "stamp:i" (its score).
local b = r[#r]
if b then
  local p = string.find(b, ':', 1, true)
  b = p and tonumber(string.sub(b, 1, p - 1)) or tonumber(redis.call('ZSCORE', key, b))
end
if b and b > edge then
  local remaining = 0
  if n > 1 then
    remaining = math.max(rate - redis.call('ZCOUNT', key, '(' .. string.format('%.0f', edge), '+inf'), 0)
  end
  return {0, remaining, b + period - now, math.max(redis.call('PTTL', key), 0) * 1000}
end
if ARGV[4] ~= '1' then
  local c = redis.call('ZCOUNT', key, '(' .. string.format('%.0f', edge), '+inf')
  if c == 0 then
    return {1, rate, 0, 0}
  end
  return {1, rate - c, 0, math.max(redis.call('PTTL', key), 0) * 1000}
end
local stamp = string.format('%.0f', now)
local remaining
if n == 1 then
  if not b then
    remaining = rate - redis.call('ZCOUNT', key, '(' .. string.format('%.0f', edge), '+inf') - 1
  end
  local i = 1
  while redis.call('ZADD', key, 'NX', stamp, stamp .. ':' .. i) == 0 do
    i = i + 1
  end
else
  local c = redis.call('ZCOUNT', key, '(' .. string.format('%.0f', edge), '+inf')
  remaining = rate - c - n
  -- ZADD in chunks: unpack of a large table overflows Lua's C stack.
  local i = 1
  while i <= n do
    local args = {}
    while #args < 200 and i <= n do
      args[#args + 1] = stamp
      args[#args + 1] = stamp .. ':' .. (c + i)
      i = i + 1
    end
    redis.call('ZADD', key, unpack(args))
  end
end
if b then
  local gone = redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.0f', edge))
  if not remaining then
    if #r == 1 then
      -- The key held exactly Rate events (the deciding one the oldest):
      -- gone of them left, one came.
      remaining = gone - 1
    else
      remaining = rate - redis.call('ZCARD', key)
    end
  end
end
redis.call('PEXPIRE', key, math.ceil(period / 1000))
return {1, remaining, 0, period}
