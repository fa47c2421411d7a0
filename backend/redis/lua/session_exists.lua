-- KEYS[1] session, KEYS[2..5] the indexes; ARGV[1] handle.
-- Returns 1 live, 0 missing or expired (an expired one is deleted and
-- unindexed), -1 malformed.
local st = load(KEYS[1], ARGV[1], now_ms())
if st == 'live' then
  return 1
elseif st == 'malformed' then
  return -1
end
return 0
