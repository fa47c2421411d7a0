-- KEYS[6..] sessions; ARGV[1] 'delete' or 'prune', ARGV[2..] their members.
-- delete: deletes each session and unindexes it; returns how many existed.
-- prune: unindexes each session that no longer exists; returns how many.
local n = 0
for i = 2, #ARGV do
  local s = KEYS[4 + i]
  if ARGV[1] == 'delete' then
    if redis.call('DEL', s) == 1 then
      n = n + 1
    end
    unindex(ARGV[i])
  elseif redis.call('EXISTS', s) == 0 then
    unindex(ARGV[i])
    n = n + 1
  end
end
return n
