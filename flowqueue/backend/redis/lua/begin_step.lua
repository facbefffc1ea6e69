-- begin_step: K.steps, K.awaits (the run's), K.timers, K.handed, K.payloads (of wake
-- timers); a timeout's K.waiters (event wait) or K.trigger (trigger wait), else absent.
-- A.step, A.lease_ms, A.started the step.started body ("$attempt"), A.start the run's
-- flow.started when the message carries its start ('' if not), A.entries (JSON list) and
-- A.made_ms with it, A.shortest_retention_ms (too_late), A.timer that sent this
-- delivery ('' for none), A.on_claim appended when its claim wins (step.retry "$attempt",
-- step.resumed "$result"), A.claim_kind its kind, A.retention_ms of a settled trigger.
-- A step retrying or awaiting starts only for a delivery whose timer it can claim (ZREM
-- from the timer sets): a timer handed over twice, a timeout racing a resume and a
-- duplicate delivery all meet the same claim, and exactly one wins.
-- Returns {'run', attempt}, {'busy', ms left}, {'done'}, {'ended'}, {'wait'} or {'stale'}
-- (StepStart, in flowqueue/backend/coordinator.py, says when).
-- An entry step that gets here before its starter recorded the run starts it.
if A.start ~= '' and run_gone() and not too_late(A.made_ms, A.shortest_retention_ms) then
  start(A.start, cjson.decode(A.entries))
end
local claimed = claim(A.timer, false)
flush()
return claimed
