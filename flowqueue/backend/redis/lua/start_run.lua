-- start_run: K.steps. A.started the flow.started body, A.sends the entry steps' broker
-- writes (send_lib.lua; '[]' when Celery sends them), A.entry the entry step names.
-- Returns {'exists'} when the run id is taken (an entry step's claim may have started it:
-- begin_step.lua), and sends nothing; else {'started', event id}, its entry steps queued.
local writes = check_writes(cjson.decode(A.sends))
if redis.call('EXISTS', K.stream) == 1 then
  return {'exists'}
end
send(writes)
local id = start(A.started, A.entry)
flush()
return {'started', id}
