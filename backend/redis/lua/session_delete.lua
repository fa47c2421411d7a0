-- KEYS[1] session; ARGV[1] handle, ARGV[2] (optional) the user the
-- session must belong to.
-- Returns 1 deleted, 0 missing or another user's.
local u = redis.call('HGET', KEYS[1], '_u')
if not u then
  if #ARGV < 2 and redis.call('DEL', KEYS[1]) == 1 then
    return 1 -- a malformed session: deleted, with nothing to unindex
  end
  return 0
end
if #ARGV >= 2 and ARGV[2] ~= u then
  return 0
end
redis.call('DEL', KEYS[1])
unindex(u .. '\0' .. ARGV[1])
return 1
