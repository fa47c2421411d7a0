-- KEYS[6..] sessions; ARGV[1] 'delete' or 'prune', ARGV[2..] their
-- index members (user, NUL, handle).
-- delete: deletes each session of the member's user (live, expired or
-- malformed) and unindexes it; returns how many were live.
-- prune: unindexes each session that no longer exists or has expired
-- (deleting it); returns how many.
local now = now_ms()
local n = 0
for i = 2, #ARGV do
  local s, mem = KEYS[4 + i], ARGV[i]
  local st, m = load(s, string.sub(mem, -32), now)
  if ARGV[1] == 'delete' then
    local mine = string.sub(mem, 1, #mem - 33) == (m and m.u)
    if st == 'live' and mine then
      n = n + 1
    end
    if st == 'malformed' or mine then
      redis.call('DEL', s)
    end
    unindex(mem)
  elseif st == 'missing' or st == 'expired' then
    unindex(mem)
    n = n + 1
  end
end
return n
