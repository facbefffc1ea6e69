-- claim_ticks (schedules): K.fired schedule -> the ms its next tick must be later than,
-- K.paused the paused schedules, K.starting the won ticks whose run has not been confirmed
-- started, K.registry and K.last the trigger registry (registry_lib).
-- A.now_ms, A.redo_ms, A.maxlen, A.items: schedule, tick ms, run id, its field in K.last,
-- its trigger.fired event JSON, repeated (ascending ticks per schedule).
-- A tick is won by the one caller that finds it later than the schedule's mark and the
-- schedule not paused: the mark moves to it, its trigger.fired is appended and its start
-- is owed in K.starting (due again at now + redo, '<tick> <run id> <schedule>'), in this
-- one script. Any number of pumps may offer the same ticks; each is won once, and its run
-- is started until one start is confirmed. One code per tick: 1 won, 0 fired already (or
-- not after the mark), 2 paused.
local out = {}
local redo_at = tonumber(A.now_ms) + tonumber(A.redo_ms)
for i = 1, #A.items, 5 do
  local name, tick = A.items[i], A.items[i + 1]
  local mark = redis.call('HGET', K.fired, name)
  if redis.call('HEXISTS', K.paused, name) == 1 then
    out[#out + 1] = 2
  elseif mark and tonumber(tick) <= tonumber(mark) then
    out[#out + 1] = 0
  else
    redis.call('HSET', K.fired, name, tick)
    fired(K.registry, K.last, A.items[i + 3], A.items[i + 4], A.maxlen)
    redis.call('ZADD', K.starting, redo_at, tick .. ' ' .. A.items[i + 2] .. ' ' .. name)
    out[#out + 1] = 1
  end
end
return out
