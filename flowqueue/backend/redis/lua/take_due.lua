-- take_due (the timer pump): KEYS 1 timers, 2 handed timers.
-- ARGV 1 horizon ms, 2 limit, 3 grace ms.
-- Moves timers due within the horizon to 'handed' (scored by when to hand them over
-- again: due + grace) and returns {timer, due ms, ...}; handed timers whose time to hand
-- over again has come (their countdown message died with a worker) are returned too.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local grace, limit = tonumber(ARGV[3]), tonumber(ARGV[2])
local out = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now + tonumber(ARGV[1]),
  'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #due, 2 do
  local timer, at = due[i], tonumber(due[i + 1])
  redis.call('ZREM', KEYS[1], timer)
  redis.call('ZADD', KEYS[2], math.max(at, now) + grace, timer)
  out[#out + 1] = timer
  out[#out + 1] = tostring(at)
end
local lost = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, timer in ipairs(lost) do
  redis.call('ZADD', KEYS[2], now + grace, timer)
  out[#out + 1] = timer
  out[#out + 1] = tostring(now)
end
return out
