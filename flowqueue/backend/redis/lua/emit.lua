-- emit: K.steps, K.emits (the run's first payload of each name), K.handed, K.payloads,
-- K.signals and K.waiters of the name. A.name, A.event the emit body, A.payload (JSON),
-- A.republish (1/0), A.candidates JSON [[step, [subscribed name, ...]], ...],
-- A.sends JSON {step: broker writes} (send_lib.lua) for candidates whose message is
-- known before the claim (one subscription: this payload), A.maxlen and A.ttl_ms of the
-- signal stream, A.grace_ms.
-- Appends the emit event and signals the name (waking matching waits in any run). While
-- the run is live, records the first payload of each name and claims every candidate
-- whose subscriptions are all emitted, once (HSETNX). With republish set (a retried
-- emitter), ready steps still queued are returned again, since the earlier attempt may
-- have died before sending them; begin_step drops duplicates.
-- A.started (with A.step, A.lease_ms): the emitter's deferred claim, made first in this
-- call (claim_lib.lua; K.timers, K.trigger and the rest of its names go unused without a
-- timer); '' for none.
-- Returns {event id, {woken timer, ...}, {step, sent, payload...}, ...} (sent: 1 when its
-- writes were made here, 0 when the caller sends it), {'gone'} when the run is gone
-- (expired), or {'claim', decision...} when the claim does not run: nothing is written
-- or signalled.
local sends = cjson.decode(A.sends)
for _, writes in pairs(sends) do
  check_writes(writes)
end
if A.started ~= '' then
  local claimed = claim('', true)
  if claimed[1] ~= 'run' then
    return {'claim', unpack(claimed)}
  end
end
if run_gone() then
  return {'gone'}
end
local id = append(A.event, 'emit')
local _, woken = signal(K.signals, K.waiters, K.handed, K.payloads, A.payload, A.run_id,
  A.maxlen, A.ttl_ms, A.grace_ms)
local out = {id, woken}
if not run_ended() then
  redis.call('HSETNX', K.emits, A.name, A.payload)
  for _, candidate in ipairs(cjson.decode(A.candidates)) do
    local step, names = candidate[1], candidate[2]
    local payloads = redis.call('HMGET', K.emits, unpack(names))
    local ready = true
    for j = 1, #names do
      if not payloads[j] then
        ready = false
        break
      end
    end
    if ready then
      local claimed = redis.call('HSETNX', K.steps, step, STATUS.queued) == 1
      if claimed and sends[step] then
        send(sends[step])
        out[#out + 1] = {step, 1}
      elseif claimed or (A.republish == '1' and redis.call('HGET', K.steps, step) == STATUS.queued) then
        out[#out + 1] = {step, 0, unpack(payloads)}
      end
    end
  end
end
flush()
return out
