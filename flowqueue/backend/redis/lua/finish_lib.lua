-- finish_lib: finish(), the end of one step: K.steps, K.timers. A.step, A.outcome
-- ('completed' | 'failed' | 'retry'),
-- A.event the step event body, A.kind its kind, A.terminal flow.completed ("$duration_ms")
-- or flow.failed ('' for a retry), A.timer the retry timer due at A.due_ms, A.arg the
-- step's input JSON (kept for the retry), A.expect '' or '<status> <attempts>' as a
-- recorder outside the delivery (a Celery signal in the worker's main process) read them.
-- A step finishes once: a second finish (duplicate delivery, or a step of a cancelled
-- run) writes nothing. A failure fails the run; a retry parks the step as 'retrying' on a
-- durable timer; a completion completes the run when no step is active.
-- Returns {'dup'} or {'ok', step event id, terminal event id or ''}.
-- The caller flushes.
local function finish()
  local step, outcome = A.step, A.outcome
  local status = redis.call('HGET', K.steps, step)
  if FINISHED[status] or run_gone() then -- a run gone (expired) is never written again
    return {'dup'}
  end
  -- That recorder acts only on the attempt it saw: not once the step moved on (finished,
  -- parked for a retry, or claimed again after its lease ran out).
  if A.expect ~= ''
      and A.expect ~= (status or '') .. ' ' .. (redis.call('HGET', K.steps, step .. '|attempts') or '0') then
    return {'dup'}
  end
  redis.call('HDEL', K.steps, step .. '|lease')
  local id = append(A.event, A.kind)
  local terminal = ''
  if outcome == 'retry' then
    if run_ended() then
      redis.call('HSET', K.steps, step, STATUS.failed)
    else
      redis.call('HSET', K.steps, step, STATUS.retrying, step .. '|arg', A.arg, step .. '|timer', A.timer)
      redis.call('ZADD', K.timers, A.due_ms, A.timer)
    end
    return {'ok', id, ''}
  end
  redis.call('HSET', K.steps, step, outcome)
  if not run_ended() then
    if outcome == 'failed' then
      terminal = append(A.terminal, 'flow.failed')
    else
      local active = false
      local fields = redis.call('HGETALL', K.steps)
      for j = 1, #fields, 2 do
        if not string.find(fields[j], '|', 1, true) and ACTIVE[fields[j + 1]] then
          active = true
          break
        end
      end
      if not active then
        local started = tonumber(meta().started_ms or now_ms())
        terminal = append(fill(A.terminal, SLOT.duration_ms, math.max(0, now_ms() - started)),
          'flow.completed')
      end
    end
  end
  return {'ok', id, terminal}
end
