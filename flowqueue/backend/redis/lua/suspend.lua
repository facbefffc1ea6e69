-- suspend (a step reached an await): KEYS 5 steps hash, 7 timers, 9 awaits hash,
-- 11 waiters hash of the awaited event, 12 trigger key, 13 signal stream of the event
-- (11-13 only matter for their kind of await).
-- ARGV 6 step, 7 await key, 8 record JSON (pending), 9 step.await.* body, 10 due ms of
-- the record's timer, 11 step input JSON (for the resumed delivery), 12 waiter JSON
-- ('' unless an event wait), 13 match JSON, 14 step.resumed body ("$result"), 15 trigger
-- JSON ('' unless a trigger wait), 16 how many recent emissions to look through.
-- Returns {'gone'} (the run ended, or the step is not running: this delivery stops),
-- {'exists', record} (registered already), {'resolved', record} (an event emitted since
-- the step began waiting matches, so it goes on at once) or {'suspended'}.
local step, key = ARGV[6], ARGV[7]
if run_ended() or redis.call('HGET', KEYS[5], step) ~= 'running' then
  return {'gone'}
end
local existing = redis.call('HGET', KEYS[9], key)
if existing then
  return {'exists', existing}
end
local rec = cjson.decode(ARGV[8])
if ARGV[12] ~= '' then
  -- Emissions since the step began waiting (so one sent while this wait was on its way
  -- here is not missed): the first that matches resolves the wait now.
  local since = redis.call('HGET', KEYS[5], step .. '|since') or '-'
  local match = cjson.decode(ARGV[13])
  local entries = redis.call('XRANGE', KEYS[13], since, '+', 'COUNT', ARGV[16])
  for _, entry in ipairs(entries) do
    local payload = entry[2][2]
    if matches(decoded(payload), match) then
      rec.state, rec.result, rec.timer, rec.wkey, rec.waiter = 'resumed', payload, '', '', ''
      local record = cjson.encode(rec)
      redis.call('HSET', KEYS[9], key, record)
      redis.call('HSET', KEYS[5], step .. '|since', '(' .. entry[1])
      append(ARGV[9], 'a')
      append(fill(ARGV[14], 'result', payload), 'r')
      flush()
      return {'resolved', record}
    end
  end
  redis.call('HSET', KEYS[11], rec.waiter, ARGV[12])
end
if ARGV[15] ~= '' then
  redis.call('SET', KEYS[12], ARGV[15])
end
redis.call('HSET', KEYS[9], key, ARGV[8])
if rec.timer ~= '' then
  redis.call('ZADD', KEYS[7], ARGV[10], rec.timer)
  redis.call('HSET', KEYS[5], step .. '|timer', rec.timer)
end
redis.call('HSET', KEYS[5], step, 'awaiting', step .. '|arg', ARGV[11])
redis.call('HDEL', KEYS[5], step .. '|lease')
append(ARGV[9], 'a')
flush()
return {'suspended'}
