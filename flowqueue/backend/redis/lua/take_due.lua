-- take_due (the timer pump): K.timers, K.handed the timers handed over.
-- A.horizon_ms, A.limit, A.grace_ms.
-- Moves timers due within the horizon to 'handed' (scored by when to hand them over
-- again: due + grace) and returns {timer, due ms, ...}; handed timers whose time to hand
-- over again has come (their countdown message died with a worker) are returned too.
local now = now_ms()
local grace, limit = tonumber(A.grace_ms), tonumber(A.limit)
local out = {}
local due = redis.call('ZRANGEBYSCORE', K.timers, '-inf', now + tonumber(A.horizon_ms),
  'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #due, 2 do
  local timer, at = due[i], tonumber(due[i + 1])
  redis.call('ZREM', K.timers, timer)
  redis.call('ZADD', K.handed, math.max(at, now) + grace, timer)
  out[#out + 1] = timer
  out[#out + 1] = tostring(at)
end
local lost = redis.call('ZRANGEBYSCORE', K.handed, '-inf', now, 'LIMIT', 0, limit)
for _, timer in ipairs(lost) do
  redis.call('ZADD', K.handed, now + grace, timer)
  out[#out + 1] = timer
  out[#out + 1] = tostring(now)
end
return out
