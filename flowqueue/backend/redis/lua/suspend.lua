-- suspend (a step reached an await): K.steps, K.timers, K.awaits; an event wait's K.waiters
-- and K.signals, a trigger wait's K.trigger, else absent. A.step, A.key (of the await),
-- A.record its JSON (pending), A.event the step.await.* body, A.kind its kind, A.due_ms of
-- the record's timer, A.arg the step's input JSON (for the resumed delivery), A.waiter and
-- A.match JSON ('' unless an event wait), A.resumed the step.resumed body ("$result"),
-- A.trigger_json ('' unless a trigger wait).
-- Returns {'gone'} (the run ended, or the step is not running: this delivery stops),
-- {'exists', record} (registered already), {'resolved', record} (an event emitted since
-- the step began waiting matches, so it goes on at once) or {'suspended'}.
local step, key = A.step, A.key
if run_ended() or redis.call('HGET', K.steps, step) ~= STATUS.running then
  return {'gone'}
end
local existing = redis.call('HGET', K.awaits, key)
if existing then
  return {'exists', existing}
end
local rec = cjson.decode(A.record)
if A.waiter ~= '' then
  -- Emissions since the step began waiting (so one sent while this wait was on its way
  -- here is not missed): the first that matches resolves the wait now.
  local since = redis.call('HGET', K.steps, step .. '|since') or '-'
  local match = cjson.decode(A.match)
  local entries = redis.call('XRANGE', K.signals, since, '+', 'COUNT', 10000) -- at most
  for _, entry in ipairs(entries) do
    local payload = entry[2][2]
    if matches(decoded(payload), match) then
      rec.state, rec.result, rec.timer, rec.wkey, rec.waiter = 'resumed', payload, '', '', ''
      local record = cjson.encode(rec)
      redis.call('HSET', K.awaits, key, record)
      redis.call('HSET', K.steps, step .. '|since', '(' .. entry[1])
      append(A.event, A.kind)
      append(fill(A.resumed, SLOT.result, payload), 'step.resumed')
      flush()
      return {'resolved', record}
    end
  end
  redis.call('HSET', K.waiters, rec.waiter, A.waiter)
end
if A.trigger_json ~= '' then
  redis.call('SET', K.trigger, A.trigger_json)
end
redis.call('HSET', K.awaits, key, A.record)
if rec.timer ~= '' then
  redis.call('ZADD', K.timers, A.due_ms, rec.timer)
  redis.call('HSET', K.steps, step .. '|timer', rec.timer)
end
redis.call('HSET', K.steps, step, STATUS.awaiting, step .. '|arg', A.arg)
redis.call('HDEL', K.steps, step .. '|lease')
append(A.event, A.kind)
flush()
return {'suspended'}
