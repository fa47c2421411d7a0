-- Shared by the scripts that create a lease: take() returns the new
-- lease's fence. KEYS[2] is the fence counter (same hash slot as the
-- lease, never expires).
local function take()
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
