-- Trims a stream by length and age, by the server's clock.
-- KEYS[1] stream, KEYS[2] group liveness.
-- ARGV[1] max length (0: none), ARGV[2] max age ms (0: none),
-- ARGV[3] "1": safe (never drop what a live group has not acknowledged),
-- ARGV[4] group TTL ms. Returns the number of entries dropped.
local function nextid(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return ms .. '-' .. (tonumber(seq) + 1)
end
local function less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if #am ~= #bm then return #am < #bm end
  if am ~= bm then return am < bm end
  return tonumber(as) < tonumber(bs)
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local maxlen, maxage = tonumber(ARGV[1]), tonumber(ARGV[2])
if ARGV[3] ~= '1' then
  -- Not safe: the server trims by itself, reading nothing.
  local n = 0
  if maxlen > 0 then n = n + redis.call('XTRIM', KEYS[1], 'MAXLEN', maxlen) end
  if maxage > 0 then n = n + redis.call('XTRIM', KEYS[1], 'MINID', math.max(now - maxage, 0) .. '-0') end
  return n
end
-- Safe: find the cut, then move it back before what a live group still
-- needs. A cut by length reads the IDs it drops.
local len = redis.call('XLEN', KEYS[1])
-- cut: entries with IDs below it go.
local cut = nil
if maxage > 0 then
  cut = math.max(now - maxage, 0) .. '-0'
end
if maxlen > 0 and len > maxlen then
  local r = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - maxlen + 1)
  local c = r[len - maxlen + 1][1]
  if cut == nil or less(cut, c) then cut = c end
end
if cut == nil then return 0 end
if ARGV[3] == '1' then
  local ttl = tonumber(ARGV[4])
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local name, last
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1] end
      if g[i] == 'last-delivered-id' then last = g[i + 1] end
    end
    local seen = tonumber(redis.call('ZSCORE', KEYS[2], name) or '0')
    if seen >= now - ttl then
      local keep = nextid(last)
      local p = redis.call('XPENDING', KEYS[1], name)
      if p[2] and less(p[2], keep) then keep = p[2] end
      if less(keep, cut) then cut = keep end
    end
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', cut)
