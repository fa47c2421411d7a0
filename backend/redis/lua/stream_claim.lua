-- Claims pending entries of a group for a consumer, in one step.
-- KEYS[1] stream, KEYS[2] dead letters, KEYS[3] trimmed-while-pending
-- counter, KEYS[4] group liveness (group -> server ms).
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle ms, or '<' and a
-- server time in ms: only entries pending since before that time (idle
-- longer than the time since then, and 2 ms more: idle times are whole
-- milliseconds), measured when the script runs, ARGV[4] count,
-- ARGV[5] max deliveries, ARGV[6] "1": only the consumer's own entries,
-- ARGV[7] the first ID to look at, ARGV[8..] IDs to leave alone (run now
-- by another subscription of this process under the same consumer name).
-- An entry trimmed away is acknowledged and counted; one delivered max
-- deliveries times is dead-lettered (copied with its ID, envelope and
-- count) and acknowledged; the others are claimed with their count
-- raised by one. Returns {trimmed, dead, {{id, envelope, count}...}, next}
-- where next is the last ID looked at ("" when XPENDING ran dry).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[4], now, ARGV[1])
local idle = ARGV[3]
if string.sub(idle, 1, 1) == '<' then
  idle = math.max(0, now - tonumber(string.sub(idle, 2)) + 2)
end
local p
if ARGV[6] == '1' then
  p = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', idle, ARGV[7], '+', ARGV[4], ARGV[2])
else
  p = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', idle, ARGV[7], '+', ARGV[4])
end
local skip = {}
for i = 8, #ARGV do skip[ARGV[i]] = true end
local out = {}
local trimmed, dead = 0, 0
local max = tonumber(ARGV[5])
local last = ''
for _, e in ipairs(p) do
  local id, n = e[1], tonumber(e[4])
  last = id
  local r = {}
  if not skip[id] then r = redis.call('XRANGE', KEYS[1], id, id) end
  local env = false
  if #r == 1 then
    local f = r[1][2]
    for i = 1, #f, 2 do
      if f[i] == 'e' then env = f[i + 1] end
    end
  end
  if skip[id] then
    -- run by another subscription of this process: left alone
  elseif #r == 0 then
    redis.call('XACK', KEYS[1], ARGV[1], id)
    trimmed = trimmed + 1
  elseif n >= max then
    redis.call('XADD', KEYS[2], '*', 'id', id, 'e', env or '', 'n', n, 'g', ARGV[1])
    redis.call('XACK', KEYS[1], ARGV[1], id)
    dead = dead + 1
  else
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'RETRYCOUNT', n + 1, 'JUSTID')
    out[#out + 1] = {id, env or '', n + 1}
  end
end
if trimmed > 0 then
  redis.call('INCRBY', KEYS[3], trimmed)
end
if #p < tonumber(ARGV[4]) then
  last = ''
end
return {trimmed, dead, out, last}
