-- Shared by the scripts that create a lease: take() returns the new
-- lease's fence. KEYS[2] is the fence counter (same hash slot as the
-- lease).
--
-- The fence is the greater of the counter + 1 and the server clock in
-- microseconds. The clock term keeps fences increasing when the counter
-- goes back or goes missing (a restart from an older snapshot, a lost
-- AOF tail, a restored backup, a failover to a replica that lagged): as
-- long as the server clock does not run backwards, now is past every
-- fence handed out before, since each of them was at most the clock at
-- its time plus one per draw made faster than one a microsecond (a script
-- takes longer than that). The counter term keeps them increasing while
-- the clock steps back; it is needed only while it is ahead of the clock,
-- so the key expires 10 minutes after the clock passes it.
-- A counter that is not a number (a foreign writer) counts as missing.
--
-- One write in the common case: SET ... GET stores the clock and returns
-- the counter it replaced; only when that counter was not behind the
-- clock is it written again, as counter + 1.
--
-- tm: a TIME reply the caller already read in this script (nil: read it).
local function take(tm)
  local t = tm or redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local c = tonumber(redis.call('SET', KEYS[2], t[1] .. string.sub('00000' .. t[2], -6), 'PX', 600000, 'GET') or '')
  if c and c >= now then
    local f = c + 1
    redis.call('SET', KEYS[2], string.format('%.0f', f), 'PX', math.floor((f - now) / 1000) + 600000)
    return f
  end
  return now
end
