-- start_run: K.steps. A.started the flow.started body, A.entry the entry step names.
-- Returns {'exists'} when the run id is taken (an entry step's claim may have started it:
-- begin_step.lua), else {'started', event id}.
if redis.call('EXISTS', K.stream) == 1 then
  return {'exists'}
end
local id = start(A.started, A.entry)
flush()
return {'started', id}
