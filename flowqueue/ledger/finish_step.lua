-- finish_step: KEYS 5 steps hash.
-- ARGV 6 step, 7 outcome ('completed' | 'failed'), 8 step event body,
--      9 terminal body: flow.completed ("$duration_ms") or flow.failed.
-- A step finishes once: a second finish (duplicate delivery) writes nothing. A failure
-- fails the run; a completion completes it when no step is queued, running or awaiting.
-- Returns {'dup'} or {'ok', step event id, terminal event id or ''}.
local step, outcome = ARGV[6], ARGV[7]
local status = redis.call('HGET', KEYS[5], step)
if status == 'completed' or status == 'failed' then
  return {'dup'}
end
redis.call('HSET', KEYS[5], step, outcome)
redis.call('HDEL', KEYS[5], step .. '|lease')
local id = append(ARGV[8], 'f')
local terminal = ''
if not run_ended() then
  if outcome == 'failed' then
    terminal = append(ARGV[9], 'F')
  else
    local active = false
    local fields = redis.call('HGETALL', KEYS[5])
    for j = 1, #fields, 2 do
      local v = fields[j + 1]
      if not string.find(fields[j], '|', 1, true)
          and (v == 'queued' or v == 'running' or v == 'awaiting') then
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
