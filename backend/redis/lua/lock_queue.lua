-- The queue of a lease's waiters, shared by the lock scripts that read
-- it (prepended to them). It is a ZSET in the lease's hash slot
-- (lease key + ":q") with one entry per waiting instance: the member is
-- the entry's arrival (16 digits: the server clock in microseconds when
-- the instance first found the lease held) followed by the instance ID,
-- so the lowest member is the oldest waiter; the score is the entry's
-- expiry (server milliseconds). A waiter renews its entry with each try,
-- and an entry not renewed drops out at its expiry, so a dead waiter
-- holds the queue up for at most one entry lifetime. The key itself
-- expires with its last entry. Beside it, a string flag (lease key +
-- ":qf", "1") lives at least as long as the queue, so a release reads the
-- lease and whether anyone may be queued in one MGET.
--
-- qnow() returns the server clock in milliseconds and the arrival prefix
-- of a new entry.
local function qnow()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), t[1] .. string.sub('00000' .. t[2], -6)
end

-- qread returns the oldest live entry of queue q and its expiry, the
-- entry of instance id (nil if none; live or lapsed), and the oldest
-- live entry of another instance and its expiry. It writes nothing. A
-- lapsed entry is never served, but its instance keeps its place if it
-- renews it before the entry is dropped (qscan): a waiter late by more
-- than its slack (a stalled process) misses its turns meanwhile, not its
-- place.
local function qread(q, nowms, id)
  local all = redis.call('ZRANGE', q, 0, -1, 'WITHSCORES')
  local head, hexp, mine, other, oexp
  for i = 1, #all, 2 do
    local m, e = all[i], tonumber(all[i + 1])
    local own = string.sub(m, 17) == id
    if own then
      mine = m
    end
    if e > nowms then
      if not head or m < head then
        head, hexp = m, e
      end
      if not own and (not other or m < other) then
        other, oexp = m, e
      end
    end
  end
  return head, hexp, mine, other, oexp
end

-- qprune drops the entries of queue q that lapsed over 10 seconds ago.
local function qprune(q, nowms)
  redis.call('ZREMRANGEBYSCORE', q, '-inf', nowms - 10000)
end

-- qscan prunes queue q (qprune), then reads it (qread).
local function qscan(q, nowms, id)
  qprune(q, nowms)
  return qread(q, nowms, id)
end

-- qreserve reserves the lease (key k, free now) for the waiter of entry
-- e, expiring at exp, and wakes it on channel ch: the key holds the
-- handoff marker until the entry's expiry. The wake payload is "\0>"
-- followed by the waiter's instance ID. pcall: under maxmemory the
-- marker may be refused; the lease is then free, only not reserved.
local function qreserve(k, e, exp, nowms, ch)
  redis.pcall('SET', k, '\0handoff', 'PX', math.max(exp - nowms, 1))
  redis.call('PUBLISH', ch, '\0>' .. string.sub(e, 17))
end
