-- End a leadership whoever holds it. KEYS[1] leadership hash; ARGV[1]
-- changes channel, ARGV[2] change payload. Returns 1 when there was one.
if redis.call('DEL', KEYS[1]) == 1 then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
  return 1
end
return 0
