-- Complete or Fail of a periodic job, on the server clock.
-- KEYS[1] the job's record (see job_due.lua).
-- ARGV[1] the period in µs; ARGV[2] the slot's index; ARGV[3] 'done' or
-- 'fail'.
-- Returns {1, index} when recorded; {0, index} when the slot's period has
-- ended (nothing is recorded: the record never moves back); {-1, index}
-- when the slot's period has not started. index is the current one.
-- The record expires when its period ends.
local p = tonumber(ARGV[1])
local s = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local idx = math.floor(now / p)
if idx * p > now then
  idx = idx - 1
elseif (idx + 1) * p <= now then
  idx = idx + 1
end
if s > idx then
  return {-1, idx}
elseif s < idx then
  return {0, idx}
end
local r = redis.call('HMGET', KEYS[1], 'p', 'i', 'd', 'f')
local done, fails = '0', 0
if tonumber(r[1]) == p and tonumber(r[2]) == idx then
  if r[3] == '1' then
    done = '1'
  end
  fails = math.max(math.floor(tonumber(r[4]) or 0), 0)
end
if ARGV[3] == 'done' then
  done = '1'
else
  fails = fails + 1
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'p', ARGV[1], 'i', string.format('%.0f', idx), 'd', done, 'f', string.format('%.0f', fails))
redis.call('PEXPIRE', KEYS[1], math.floor(((idx + 1) * p - now) / 1000) + 1)
return {1, idx}
