-- Acquire a lease in one round trip.
-- KEYS[1] lease key, KEYS[2] fence counter (same hash slot, never expires)
-- ARGV[1] token, ARGV[2] TTL in milliseconds
-- Returns the fence (> 0) when acquired; when someone else holds the
-- lease, -2 - its PTTL (so -1 means "held, no expiry").
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local f = redis.call('INCR', KEYS[2])
  if f == 1 then
    -- The counter was missing (first use, or the data set was lost):
    -- start it from the server clock in microseconds, above every fence
    -- handed out before at fewer than one acquisition per microsecond.
    local t = redis.call('TIME')
    f = tonumber(t[1]) * 1000000 + tonumber(t[2])
    redis.call('SET', KEYS[2], string.format('%.0f', f))
  end
  return f
end
return -2 - redis.call('PTTL', KEYS[1])
