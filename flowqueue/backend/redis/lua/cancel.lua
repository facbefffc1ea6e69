-- cancel: KEYS 5 steps hash, 7 timers, 8 handed timers, 9 awaits hash, 10 timer payloads,
-- 11.. the waiters hashes and trigger keys of the run's pending awaits (read beforehand).
-- ARGV 6 flow.cancelled body ('' to only release what an ended run still holds),
-- 7 trigger retention ms.
-- Marks every unfinished step cancelled, removes the run's timers, waiters and triggers
-- and appends flow.cancelled. Returns {'ended', status} (nothing to cancel), {'again'} (a
-- pending await uses a key not passed in: read again) or {'ok', queued step, ...}.
if ARGV[6] ~= '' and run_ended() then
  return {'ended', redis.call('HGET', KEYS[2], 'status') or ''}
end
local declared = {}
for i = 11, #KEYS do
  declared[KEYS[i]] = true
end
local pending = {}
local recs = redis.call('HGETALL', KEYS[9])
for i = 1, #recs, 2 do
  local rec = cjson.decode(recs[i + 1])
  if rec.state == 'pending' then
    if (rec.wkey ~= '' and not declared[rec.wkey]) or (rec.tkey ~= '' and not declared[rec.tkey]) then
      return {'again'}
    end
    pending[#pending + 1] = {recs[i], rec}
  end
end
local out = {'ok'}
local fields = redis.call('HGETALL', KEYS[5])
for i = 1, #fields, 2 do
  local field, value = fields[i], fields[i + 1]
  if not string.find(field, '|', 1, true) then
    if value == 'queued' or value == 'running' or value == 'waiting' or value == 'awaiting' then
      redis.call('HSET', KEYS[5], field, 'cancelled')
      if value == 'queued' then
        out[#out + 1] = field
      end
    end
  elseif string.sub(field, -6) == '|timer' then
    redis.call('ZREM', KEYS[7], value)
    redis.call('ZREM', KEYS[8], value)
    redis.call('HDEL', KEYS[10], value)
    redis.call('HDEL', KEYS[5], field)
  end
end
for _, item in ipairs(pending) do
  local key, rec = item[1], item[2]
  rec.state = 'cancelled'
  redis.call('HSET', KEYS[9], key, cjson.encode(rec))
  if rec.timer ~= '' then
    redis.call('ZREM', KEYS[7], rec.timer)
    redis.call('ZREM', KEYS[8], rec.timer)
  end
  if rec.wkey ~= '' then
    redis.call('HDEL', rec.wkey, rec.waiter)
  end
  if rec.tkey ~= '' then
    settle_trigger(rec.tkey, 'cancelled', ARGV[7])
  end
end
if ARGV[6] ~= '' then
  append(ARGV[6], 'X')
end
flush()
return out
