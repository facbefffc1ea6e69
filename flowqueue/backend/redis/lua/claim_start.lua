-- claim_start (a start with an idempotency key): K.idempotency; A.runs (JSON: flow -> the id
-- of the run the caller starts), A.idempotency_ms.
-- Returns the first call's answer if the key is recorded (idempotency_lib.lua), else
-- records A.runs and returns {'new', runs, '', 0, {}}.
local seen = recorded(K.idempotency)
if seen then
  return seen
end
record(K.idempotency, A.runs, '', 0, A.idempotency_ms)
return {'new', A.runs, '', 0, {}}
