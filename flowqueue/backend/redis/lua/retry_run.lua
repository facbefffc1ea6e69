-- retry_run: K.steps, K.emits, K.awaits (the run's). A.retried the flow.retried body
-- ("$steps"), A.first_emits the first payload of each name the run emitted, flat: name,
-- JSON, ... (read from its log: end_run dropped them, and joins still to come need them).
-- A failed run runs again under its id: its failed steps, and the steps its failure
-- cancelled, are queued once more with their attempts counting on (each gets one more
-- attempt); the run's retention is lifted and it counts as running again, not failed.
-- Returns {'gone'}, {'not_failed', status}, {'busy', ms} (a step the failure cancelled
-- still holds a live lease: its body may still run) or {'ok', event id, step, ...}.
if run_gone() then
  return {'gone'}
end
local failed, running = RUN_STATUS['flow.failed'], RUN_STATUS['flow.started']
local status = meta().status
if status ~= failed then
  return {'not_failed', status or ''}
end
local now = now_ms()
local steps = {}
local fields = redis.call('HGETALL', K.steps)
for i = 1, #fields, 2 do
  local field, value = fields[i], fields[i + 1]
  if not string.find(field, '|', 1, true) and (value == STATUS.failed or value == STATUS.cancelled) then
    local lease = tonumber(redis.call('HGET', K.steps, field .. '|lease') or '0')
    if lease > now then
      return {'busy', tostring(lease - now)}
    end
    steps[#steps + 1] = field
  end
end
table.sort(steps)
-- What set_status does for a run started again: out of the expiry set, its keys kept.
unexpire()
redis.call('HDEL', K.meta, 'ended_ms')
redis.call('HSET', K.meta, 'status', running)
meta_set('ended_ms', false)
meta_set('status', running)
redis.call('HINCRBY', K.stats, failed, -1)
redis.call('HINCRBY', K.stats, running, 1)
for i = 1, #A.first_emits, 2 do
  redis.call('HSETNX', K.emits, A.first_emits[i], A.first_emits[i + 1])
end
for _, step in ipairs(steps) do
  redis.call('HSET', K.steps, step, STATUS.queued)
  redis.call('HDEL', K.steps, step .. '|lease')
end
-- The awaits the failure cancelled are waited for afresh when their steps run again.
local recs = redis.call('HGETALL', K.awaits)
for i = 1, #recs, 2 do
  if cjson.decode(recs[i + 1]).state == 'cancelled' then
    redis.call('HDEL', K.awaits, recs[i])
  end
end
local listed = #steps > 0 and cjson.encode(steps) or '[]'
local id = append(fill(A.retried, SLOT.steps, listed), 'flow.retried')
flush()
return {'ok', id, unpack(steps)}
