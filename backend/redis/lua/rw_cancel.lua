-- Withdraw a waiting writer's intent (its Lock call ended without the
-- lease). KEYS[1] writer intents ZSET; ARGV[1] value, ARGV[2] wake channel,
-- ARGV[3] wake payload. Wakes the readers it may have held back.
-- Returns 1 when the intent was there, else 0.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
