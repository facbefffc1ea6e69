-- signal (from outside any run): K.signals, K.waiters (of the name), K.handed, K.payloads.
-- A.payload (JSON), A.maxlen and A.ttl_ms of the signal stream, A.grace_ms.
-- Returns {signal id, {woken timer, ...}}.
local sid, woken = signal(K.signals, K.waiters, K.handed, K.payloads, A.payload, '', A.maxlen,
  A.ttl_ms, A.grace_ms)
return {sid, woken}
