-- begin_step: KEYS 5 steps hash. ARGV 6 step, 7 lease ms, 8 step.started body ("$attempt").
-- Returns {'done'} (finished already: a duplicate delivery), {'ended'} (the run is over),
-- {'busy', ms left} (another delivery holds a live lease) or {'run', attempt, event id}.
local step = ARGV[6]
local status = redis.call('HGET', KEYS[5], step)
if status == 'completed' or status == 'failed' then
  return {'done'}
end
if run_ended() then
  return {'ended'}
end
local now = now_ms()
if status == 'running' then
  local lease = tonumber(redis.call('HGET', KEYS[5], step .. '|lease') or '0')
  if lease > now then
    return {'busy', tostring(lease - now)}
  end
end
local attempt = redis.call('HINCRBY', KEYS[5], step .. '|attempts', 1)
redis.call('HSET', KEYS[5], step, 'running', step .. '|lease', now + tonumber(ARGV[7]))
local id = append(fill(ARGV[8], 'attempt', attempt), 'f')
flush()
return {'run', tostring(attempt), id}
