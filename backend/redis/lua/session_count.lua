-- Returns the number of live sessions (no SCAN: one ZCOUNT).
return redis.call('ZCOUNT', EXP, ms(now_ms()), '+inf')
