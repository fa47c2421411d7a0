-- KEYS[1] session, KEYS[2..5] the indexes; ARGV[1] handle.
-- Returns the session's fields; none when missing or expired (an expired
-- one is deleted and unindexed), only "!" when malformed.
local st, _, all = load_all(KEYS[1], ARGV[1], now_ms())
if st ~= 'live' then
  return code_map(st)
end
return all
