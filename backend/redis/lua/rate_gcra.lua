-- A GCRA rate limit decision in one round trip, on the server clock.
-- KEYS[1] the key's TAT (theoretical arrival time), integer microseconds
-- of the server clock (TIME); ARGV[1] the emission interval in
-- microseconds (Period/Rate, rounded up), ARGV[2] the burst offset
-- (Burst × interval), ARGV[3] n, ARGV[4] '1' to record, '0' to peek.
-- Returns {allowed (1/0), remaining, retry_after_us, reset_after_us}.
--
-- Burst events pass at once, then one per interval: n events pass now
-- when TAT + n × interval − burst offset ≤ now. Remaining is floored,
-- never rounded up. A denial writes nothing. The key expires (PX) when
-- the TAT is reached: from then on a missing key and the stored one
-- decide alike. A TAT that is not a number (a foreign writer) counts as
-- missing, one beyond now + burst offset as that.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or now
if tat < now then
  tat = now
elseif tat > now + tau then
  -- Beyond any state this limit makes (a clock that stepped back, a
  -- foreign writer, another limit on the key): the whole burst is taken.
  tat = now + tau
end
local new_tat = tat + n * interval
local diff = now - (new_tat - tau)
if diff < 0 or ARGV[4] ~= '1' then
  local allowed, retry = 1, 0
  if diff < 0 then
    allowed, retry = 0, -diff
  end
  return {allowed, math.floor((now + tau - tat) / interval), retry, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor(diff / interval), 0, new_tat - now}
