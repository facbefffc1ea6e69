-- cancel: K.steps, K.awaits, K.timers, K.handed, K.payloads, K.pending (the waiters hashes
-- and triggers of the run's pending awaits, read beforehand). A.cancelled the flow.cancelled
-- body ('' to only release what an ended run still holds), A.retention_ms (of a trigger).
-- Marks every unfinished step cancelled, removes the run's timers, waiters and triggers
-- and appends flow.cancelled. Returns {'ended', status} (nothing to cancel), {'again'} (a
-- pending await uses a key not passed in: read again) or {'ok', queued step, ...}.
if A.cancelled ~= '' and run_ended() then
  return {'ended', meta().status or ''}
end
local declared = {}
for _, key in ipairs(K.pending) do
  declared[key] = true
end
local pending = {}
local recs = redis.call('HGETALL', K.awaits)
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
local fields = redis.call('HGETALL', K.steps)
for i = 1, #fields, 2 do
  local field, value = fields[i], fields[i + 1]
  if not string.find(field, '|', 1, true) then
    if ACTIVE[value] then
      redis.call('HSET', K.steps, field, STATUS.cancelled)
      if value == STATUS.queued then
        out[#out + 1] = field
      end
    end
  elseif string.sub(field, -6) == '|timer' then
    unschedule(value)
    redis.call('HDEL', K.payloads, value)
    redis.call('HDEL', K.steps, field)
  end
end
for _, item in ipairs(pending) do
  local key, rec = item[1], item[2]
  rec.state = 'cancelled'
  redis.call('HSET', K.awaits, key, cjson.encode(rec))
  unschedule(rec.timer)
  release(rec, rec.wkey, rec.tkey, 'cancelled', A.retention_ms) -- wkey is set with waiter
end
if A.cancelled ~= '' then
  append(A.cancelled, 'flow.cancelled')
end
flush()
return out
