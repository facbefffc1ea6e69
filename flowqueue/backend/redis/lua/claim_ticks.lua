-- claim_ticks (schedules): K.fired schedule -> the ms its next tick must be later than,
-- K.paused the paused schedules, K.registry and K.last the trigger registry (registry_lib).
-- A.maxlen, A.items: schedule, tick ms, its field in K.last, its trigger.fired event JSON,
-- repeated (ascending ticks per schedule).
-- A tick is won by the one caller that finds it later than the schedule's mark and the
-- schedule not paused: the mark moves to it and its trigger.fired is appended, in this
-- one script. Any number of pumps may offer the same ticks; each is won once. One code
-- per tick: 1 won, 0 fired already (or not after the mark), 2 paused.
local out = {}
for i = 1, #A.items, 4 do
  local name, tick = A.items[i], A.items[i + 1]
  local mark = redis.call('HGET', K.fired, name)
  if redis.call('HEXISTS', K.paused, name) == 1 then
    out[#out + 1] = 2
  elseif mark and tonumber(tick) <= tonumber(mark) then
    out[#out + 1] = 0
  else
    redis.call('HSET', K.fired, name, tick)
    fired(K.registry, K.last, A.items[i + 2], A.items[i + 3], A.maxlen)
    out[#out + 1] = 1
  end
end
return out
