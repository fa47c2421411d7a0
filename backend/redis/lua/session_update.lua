-- KEYS[1] session, KEYS[2..5] the indexes; ARGV[1] handle, ARGV[2] the
-- limit on the session's data in bytes, ARGV[3] number of fields to set,
-- then that many field, value pairs, then the fields to delete.
-- The session's data (keys without "d:", and values) may not exceed the
-- limit after the merge; "_n" keeps its size, and the merged fields' old
-- values come with the meta fields (one HMGET for up to 500 of them), so
-- the check reads nothing else (but a count of the whole hash before a
-- refusal). "_f" keeps the hash's field count (see load).
-- Returns 1 done, 0 missing or expired (a missing session is never
-- re-created; an expired one is deleted and unindexed), -1 malformed
-- (left as it is), -2 over the limit (nothing changed).
local nset = tonumber(ARGV[3])
local last = 2 * nset + 3
-- The merged fields' names: those set, then those deleted.
local names = {}
for i = 4, last - 1, 2 do
  names[#names + 1] = ARGV[i]
end
for i = last + 1, #ARGV do
  names[#names + 1] = ARGV[i]
end
local first = names
if #names > 500 then
  first = {unpack(names, 1, 500)}
end
local st, m, v = load(KEYS[1], ARGV[1], now_ms(), first)
if st == 'malformed' then
  return -1
elseif st ~= 'live' then
  return 0
end
-- old[q]: the value field names[q] had, or false.
local old = {}
for q = 1, #first do
  old[q] = v[8 + q]
end
local j = #first
while j < #names do
  local hi = math.min(j + 500, #names)
  local r = redis.call('HMGET', KEYS[1], unpack(names, j + 1, hi))
  for q = 1, #r do
    old[j + q] = r[q]
  end
  j = hi
end
local d, len = 0, m.len -- the merge's change in size; the field count after it
for q = 1, #names do
  local f, o = names[q], old[q]
  if o then
    d = d - (#f - 2) - #o
  end
  if q <= nset then
    d = d + #f - 2 + #ARGV[3 + 2 * q]
    if not o then
      len = len + 1
    end
  elseif o then
    len = len - 1
  end
end
local n = data_size(KEYS[1], m.n) + d
if n > tonumber(ARGV[2]) and m.n then
  -- Refused by the recorded size: counted again before refusing, so a
  -- count left wrong (by an older version's Update) heals.
  n = data_size(KEYS[1], nil) + d
end
if n > tonumber(ARGV[2]) then
  return -2
end
if not v[7] then
  len = len + 1 -- "_n" is added
end
if not v[8] then
  len = len + 1 -- "_f" is added
end
local i = last + 1
while i <= #ARGV do -- one HDEL per 1000 fields, one HSET per 500 (Lua's stack bounds unpack)
  local hi = math.min(i + 999, #ARGV)
  redis.call('HDEL', KEYS[1], unpack(ARGV, i, hi))
  i = hi + 1
end
local a = {'_n', ms(n), '_f', ms(len)}
for p = 4, math.min(last, 1003) do
  a[#a + 1] = ARGV[p]
end
redis.call('HSET', KEYS[1], unpack(a))
i = 1004
while i < last do
  local hi = math.min(i + 999, last)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, hi))
  i = hi + 1
end
return 1
