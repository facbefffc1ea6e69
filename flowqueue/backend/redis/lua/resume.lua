-- resume (flowqueue.resume of a trigger): K.steps, K.timers, K.handed, K.awaits, K.trigger.
-- A.step, A.key (of the await), A.payload (JSON), A.resumed the step.resumed body, A.timer
-- the resume timer, A.grace_ms, A.retention_ms (of a settled trigger).
-- The trigger's one claim: resolves the await (its timeout timer goes), records the
-- payload and parks a resume timer in the handed set (the caller sends the step now; the
-- pump sends it again if the caller dies first).
-- Returns {'unknown'}, {'used', state}, {'ended'} or {'ok', step input JSON}.
local raw = redis.call('GET', K.trigger)
if not raw then
  return {'unknown'}
end
local t = cjson.decode(raw)
if t.state ~= 'pending' then
  return {'used', t.state}
end
if run_ended() then
  return {'ended'}
end
local key, step = A.key, A.step
local rec_raw = redis.call('HGET', K.awaits, key)
local rec = rec_raw and cjson.decode(rec_raw)
if not rec or rec.state ~= 'pending' then
  return {'used', rec and rec.state or 'unknown'}
end
rec.state, rec.result = 'resumed', A.payload
unschedule(rec.timer)
redis.call('HSET', K.awaits, key, cjson.encode(rec))
settle_trigger(K.trigger, 'resumed', A.retention_ms)
local now = now_ms()
redis.call('ZADD', K.handed, now + tonumber(A.grace_ms), A.timer)
redis.call('HSET', K.steps, step .. '|since', tostring(now), step .. '|timer', A.timer)
append(A.resumed, 'step.resumed')
flush()
return {'ok', redis.call('HGET', K.steps, step .. '|arg') or 'null'}
