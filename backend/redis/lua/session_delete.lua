-- KEYS[1] session; ARGV[1] handle, ARGV[2] (optional) the user the
-- session must belong to.
-- Returns 1 deleted, 0 missing, expired (deleted and unindexed) or
-- another user's. A malformed session is deleted too (ending it writes
-- nothing over it), unless ARGV[2] is given and its user is not readable
-- as ARGV[2].
local st, m = load(KEYS[1], ARGV[1], now_ms())
if st == 'missing' or st == 'expired' then
  return 0
end
local u = m and m.u
if st == 'malformed' then
  u = redis.pcall('HGET', KEYS[1], '_u')
  if type(u) ~= 'string' then
    u = nil
  end
end
if #ARGV >= 2 and ARGV[2] ~= u then
  return 0
end
redis.call('DEL', KEYS[1])
if u then
  unindex(u .. '\0' .. ARGV[1])
end
return 1
