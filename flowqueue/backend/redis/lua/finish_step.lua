-- finish_step: KEYS 5 steps hash, 6 emits hash, 7 timers.
-- ARGV 6 step, 7 outcome ('completed' | 'failed' | 'retry'), 8 step event body,
--      9 terminal body: flow.completed ("$duration_ms") or flow.failed ('' for retry),
--      10 retry timer, 11 its due time in ms, 12 the step's input as JSON (for the retry).
-- A step finishes once: a second finish (duplicate delivery, or a step of a cancelled
-- run) writes nothing. A failure
-- fails the run; a retry parks the step as 'waiting' on a durable timer; a completion
-- completes the run when no step is queued, running, waiting or awaiting.
-- Returns {'dup'} or {'ok', step event id, terminal event id or ''}.
local step, outcome = ARGV[6], ARGV[7]
local status = redis.call('HGET', KEYS[5], step)
if status == 'completed' or status == 'failed' or status == 'cancelled' then
  return {'dup'}
end
redis.call('HDEL', KEYS[5], step .. '|lease')
local id = append(ARGV[8], 'd')
local terminal = ''
if outcome == 'retry' then
  if run_ended() then
    redis.call('HSET', KEYS[5], step, 'failed')
  else
    redis.call('HSET', KEYS[5], step, 'waiting', step .. '|arg', ARGV[12], step .. '|timer',
      ARGV[10])
    redis.call('ZADD', KEYS[7], ARGV[11], ARGV[10])
  end
  flush()
  return {'ok', id, ''}
end
redis.call('HSET', KEYS[5], step, outcome)
if not run_ended() then
  if outcome == 'failed' then
    terminal = append(ARGV[9], 'F')
  else
    local active = false
    local fields = redis.call('HGETALL', KEYS[5])
    for j = 1, #fields, 2 do
      local v = fields[j + 1]
      if not string.find(fields[j], '|', 1, true)
          and (v == 'queued' or v == 'running' or v == 'waiting' or v == 'awaiting') then
        active = true
        break
      end
    end
    if not active then
      local started = tonumber(redis.call('HGET', KEYS[2], 'started_ms') or now_ms())
      terminal = append(fill(ARGV[9], 'duration_ms', math.max(0, now_ms() - started)), 'C')
    end
  end
end
flush()
return {'ok', id, terminal}
