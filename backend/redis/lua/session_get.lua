-- KEYS[1] session, KEYS[2..5] the indexes; ARGV[1] handle.
-- Returns the session's fields, nil when missing or expired (an expired
-- one is deleted and unindexed), -1 when malformed.
local st, _, all = load_all(KEYS[1], ARGV[1], now_ms())
if st ~= 'live' then
  return code(st)
end
return all
