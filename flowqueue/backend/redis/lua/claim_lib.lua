-- claim_lib: claim(timer, first), the claim of one delivery of A.step, sent by ``timer``
-- ('' for none); begin_step.lua says what it decides and returns. ``first``: a deferred
-- claim (flowqueue/runtime/_deferred.py), whose delivery ran as attempt 1: {'again'},
-- writing nothing, if the step has had an attempt. K.steps, K.awaits, K.timers,
-- K.handed, K.payloads, K.waiters / K.trigger (a timeout's); A.step, A.lease_ms,
-- A.started, A.on_claim, A.claim_kind, A.retention_ms. The caller flushes.
local function claim(timer, first)
  local step = A.step
  local status, attempts, lease, since_kept = unpack(redis.call('HMGET', K.steps, step,
    step .. '|attempts', step .. '|lease', step .. '|since'))

  -- A delivery that will never run removes its timer, so the pump stops sending it.
  local done = FINISHED[status]
  if done or run_ended() then
    unschedule(timer)
    redis.call('HDEL', K.payloads, timer)
    return {done and 'done' or 'ended'}
  end
  local now = now_ms()
  if status == STATUS.running and tonumber(lease or '0') > now then
    return {'busy', tostring(tonumber(lease) - now)}
  end
  attempts = tonumber(attempts or '0')
  if first and attempts ~= 0 then
    return {'again'}
  end
  local attempt = attempts + 1
  local since = nil
  if status == STATUS.retrying or status == STATUS.awaiting then
    if timer == '' then
      return {'wait'}
    end
    if redis.call('ZREM', K.timers, timer) + redis.call('ZREM', K.handed, timer) == 0 then
      return {'stale'}
    end
    local spec = cjson.decode(timer)
    local payload = redis.call('HGET', K.payloads, timer) -- an event wake's (else false)
    redis.call('HDEL', K.payloads, timer)
    if status ~= (spec.kind == 'retry' and STATUS.retrying or STATUS.awaiting) then
      return {'stale'}
    end
    if spec.kind == 'retry' then
      append(fill(A.on_claim, SLOT.attempt, attempt), A.claim_kind)
    else
      attempt = attempts -- a resumed step goes on with the same attempt
      local raw = redis.call('HGET', K.awaits, spec.key)
      local rec = raw and cjson.decode(raw)
      -- resume.lua resolved a resume's await already; the other timers resolve theirs here.
      if not rec or rec.state ~= (spec.kind == 'resume' and 'resumed' or 'pending') then
        return {'stale'}
      end
      if spec.kind ~= 'resume' then
        if spec.kind == 'timeout' then
          rec.state = 'timeout'
          release(rec, K.waiters, K.trigger, 'timeout', A.retention_ms)
          since = tostring(spec.due_ms)
        elseif spec.kind == 'wake' then
          rec.state = 'resumed'
          since = tostring(spec.due_ms)
        elseif spec.kind == 'event' and payload then
          rec.state = 'resumed'
          rec.result = payload
          unschedule(rec.timer) -- its timeout lost the race
          since = '(' .. spec.signal
        else
          return {'stale'}
        end
        redis.call('HSET', K.awaits, spec.key, cjson.encode(rec))
        append(fill(A.on_claim, SLOT.result, payload or 'null'), A.claim_kind)
      end
    end
    redis.call('HDEL', K.steps, step .. '|timer')
  end
  local running = {step, STATUS.running, step .. '|lease', now + tonumber(A.lease_ms),
    step .. '|attempts', attempt}
  if since or not since_kept then -- an await's end says where; else the first claim's time
    running[#running + 1], running[#running + 2] = step .. '|since', since or tostring(now)
  end
  redis.call('HSET', K.steps, unpack(running))
  append(fill(A.started, SLOT.attempt, attempt), 'step.started')
  return {'run', tostring(attempt)}
end
