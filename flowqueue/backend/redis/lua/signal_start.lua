-- signal_start (a signal from outside any run, which may start runs): K.signals, K.waiters
-- (of the name), K.handed, K.payloads as signal.lua; K.idempotency, optional: the record of
-- the call's idempotency key. A.payload, A.maxlen, A.ttl_ms, A.grace_ms as signal.lua;
-- A.runs (JSON: flow -> the id of the run the caller starts), A.idempotency_ms.
-- A key already recorded: nothing is written and the first call's answer comes back.
-- Returns an answer (idempotency_lib.lua).
if K.idempotency then
  local seen = recorded(K.idempotency)
  if seen then
    return seen
  end
end
local sid, woken = signal(K.signals, K.waiters, K.handed, K.payloads, A.payload, '', A.maxlen,
  A.ttl_ms, A.grace_ms)
if K.idempotency then
  record(K.idempotency, A.runs, sid, #woken, A.idempotency_ms)
end
return {'new', A.runs, sid, #woken, woken}
