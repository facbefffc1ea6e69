-- resume (flowqueue.resume of a trigger): KEYS 5 steps hash, 7 timers, 8 handed timers,
-- 9 awaits hash, 11 trigger key.
-- ARGV 6 step, 7 await key, 8 payload JSON, 9 step.resumed body, 10 resume timer,
-- 11 grace ms, 12 trigger retention ms.
-- The trigger's one claim: resolves the await (its timeout timer goes), records the
-- payload and parks a resume timer in the handed set (the caller sends the step now; the
-- pump sends it again if the caller dies first).
-- Returns {'unknown'}, {'used', state}, {'ended'} or {'ok', step input JSON}.
local raw = redis.call('GET', KEYS[11])
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
local key, step = ARGV[7], ARGV[6]
local rec_raw = redis.call('HGET', KEYS[9], key)
local rec = rec_raw and cjson.decode(rec_raw)
if not rec or rec.state ~= 'pending' then
  return {'used', rec and rec.state or 'unknown'}
end
rec.state, rec.result = 'resumed', ARGV[8]
if rec.timer ~= '' then
  redis.call('ZREM', KEYS[7], rec.timer)
  redis.call('ZREM', KEYS[8], rec.timer)
end
redis.call('HSET', KEYS[9], key, cjson.encode(rec))
settle_trigger(KEYS[11], 'resumed', ARGV[12])
local now = now_ms()
redis.call('ZADD', KEYS[8], now + tonumber(ARGV[11]), ARGV[10])
redis.call('HSET', KEYS[5], step .. '|since', tostring(now), step .. '|timer', ARGV[10])
append(ARGV[9], 'r')
flush()
return {'ok', redis.call('HGET', KEYS[5], step .. '|arg') or 'null'}
