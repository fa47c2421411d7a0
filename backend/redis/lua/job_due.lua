-- Due of a periodic job, on the server clock.
-- KEYS[1] the job's record, a hash: p the period (µs), i the index of the
-- period it is about, d 1 when the job ran in it, f its failed runs.
-- ARGV[1] the period in µs.
-- Returns {index, µs to the next period, done (0/1), failures}. A record
-- of another period, of an ended one, or unreadable (a foreign writer)
-- counts as none.
local p = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local idx = math.floor(now / p)
if idx * p > now then
  idx = idx - 1
elseif (idx + 1) * p <= now then
  idx = idx + 1
end
local r = redis.call('HMGET', KEYS[1], 'p', 'i', 'd', 'f')
local done, fails = 0, 0
if tonumber(r[1]) == p and tonumber(r[2]) == idx then
  if r[3] == '1' then
    done = 1
  end
  fails = math.max(math.floor(tonumber(r[4]) or 0), 0)
end
return {idx, (idx + 1) * p - now, done, fails}
