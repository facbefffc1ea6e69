-- pause_schedule: K.fired schedule -> the ms its next tick must be later than, K.paused
-- the paused schedules, K.registry the trigger registry's capped stream.
-- A.name, A.pause ('1' pause, '0' resume), A.at_ms, A.event (its trigger.paused or
-- trigger.resumed JSON), A.maxlen.
-- Pausing keeps claim_ticks from firing the schedule; resuming moves its mark to A.at_ms,
-- so no tick of the pause fires late. Returns 1, or 0 when it was so already (no event).
local paused = redis.call('HEXISTS', K.paused, A.name) == 1
if paused == (A.pause == '1') then
  return 0
end
if A.pause == '1' then
  redis.call('HSET', K.paused, A.name, A.at_ms)
else
  redis.call('HDEL', K.paused, A.name)
  local mark = redis.call('HGET', K.fired, A.name)
  if not mark or tonumber(A.at_ms) > tonumber(mark) then
    redis.call('HSET', K.fired, A.name, A.at_ms)
  end
end
redis.call('XADD', K.registry, 'MAXLEN', '~', A.maxlen, '*', 'event', A.event)
return 1
