-- begin_step: KEYS 5 steps hash, 7 timers, 8 handed timers, 9 awaits hash, 10 timer
-- payloads, 11 waiters hash of the timed-out event wait, 12 trigger of the timed-out
-- trigger wait (11 and 12 only matter for a timeout timer).
-- ARGV 6 step, 7 lease ms, 8 step.started body ("$attempt"), 9 timer that sent this
-- delivery ('' for none), 10 body appended when the timer's claim wins ("$attempt" for
-- step.retry, "$result" for step.resumed), 11 trigger retention ms.
-- A step waiting for a retry or awaiting starts only for a delivery whose timer it can
-- claim (ZREM from the timer sets): a timer handed over twice, a timeout racing a resume
-- and a duplicate delivery all meet the same claim, and exactly one wins.
-- Returns {'done'} (finished already: a duplicate delivery), {'ended'} (the run is over),
-- {'busy', ms left} (another delivery holds a live lease), {'wait'} (the step waits for a
-- timer and this delivery is not it), {'stale'} (its timer fired already) or
-- {'run', attempt}.
local step, timer = ARGV[6], ARGV[9]
local status = redis.call('HGET', KEYS[5], step)

-- A delivery that will never use its timer removes it, so the pump stops sending it.
local function drop_timer()
  if timer ~= '' then
    redis.call('ZREM', KEYS[7], timer)
    redis.call('ZREM', KEYS[8], timer)
    redis.call('HDEL', KEYS[10], timer)
  end
end

if status == 'completed' or status == 'failed' or status == 'cancelled' then
  drop_timer()
  return {'done'}
end
if run_ended() then
  drop_timer()
  return {'ended'}
end
local now = now_ms()
if status == 'running' then
  local lease = tonumber(redis.call('HGET', KEYS[5], step .. '|lease') or '0')
  if lease > now then
    return {'busy', tostring(lease - now)}
  end
end
local attempts = tonumber(redis.call('HGET', KEYS[5], step .. '|attempts') or '0')
local attempt = attempts + 1
local since = nil
if status == 'waiting' or status == 'awaiting' then
  if timer == '' then
    return {'wait'}
  end
  if redis.call('ZREM', KEYS[7], timer) + redis.call('ZREM', KEYS[8], timer) == 0 then
    return {'stale'}
  end
  local spec = cjson.decode(timer)
  local payload = nil
  if spec.kind == 'event' then
    payload = redis.call('HGET', KEYS[10], timer)
    redis.call('HDEL', KEYS[10], timer)
  end
  if spec.kind == 'retry' then
    if status ~= 'waiting' then
      return {'stale'}
    end
    append(fill(ARGV[10], 'attempt', attempt), 'f')
  else
    if status ~= 'awaiting' then
      return {'stale'}
    end
    attempt = attempts -- a resumed step goes on with the same attempt
    local raw = redis.call('HGET', KEYS[9], spec.key)
    local rec = raw and cjson.decode(raw)
    if spec.kind == 'resume' then
      if not rec or rec.state ~= 'resumed' then
        return {'stale'}
      end
    else
      if not rec or rec.state ~= 'pending' then
        return {'stale'}
      end
      if spec.kind == 'timeout' then
        rec.state = 'timeout'
        if rec.waiter ~= '' then
          redis.call('HDEL', KEYS[11], rec.waiter)
        end
        if rec.tkey ~= '' then
          settle_trigger(KEYS[12], 'timeout', ARGV[11])
        end
        since = tostring(spec.due_ms)
      elseif spec.kind == 'wake' then
        rec.state = 'resumed'
        since = tostring(spec.due_ms)
      elseif spec.kind == 'event' and payload then
        rec.state = 'resumed'
        rec.result = payload
        if rec.timer ~= '' then -- its timeout lost the race
          redis.call('ZREM', KEYS[7], rec.timer)
          redis.call('ZREM', KEYS[8], rec.timer)
        end
        since = '(' .. spec.signal
      else
        return {'stale'}
      end
      redis.call('HSET', KEYS[9], spec.key, cjson.encode(rec))
      append(fill(ARGV[10], 'result', payload or 'null'), 'r')
    end
  end
  redis.call('HDEL', KEYS[5], step .. '|timer')
end
if since then
  redis.call('HSET', KEYS[5], step .. '|since', since)
else
  redis.call('HSETNX', KEYS[5], step .. '|since', tostring(now))
end
redis.call('HSET', KEYS[5], step .. '|attempts', attempt)
redis.call('HSET', KEYS[5], step, 'running', step .. '|lease', now + tonumber(ARGV[7]))
append(fill(ARGV[8], 'attempt', attempt), 'f')
flush()
return {'run', tostring(attempt)}
