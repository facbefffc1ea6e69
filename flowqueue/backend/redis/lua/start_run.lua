-- start_run: K.steps. A.started the flow.started body, A.entry the entry step names.
-- Returns {'exists'} when the run id is taken, else {'started', event id}.
if redis.call('EXISTS', K.stream) == 1 then
  return {'exists'}
end
short = true -- the run's meta names its flow from this call on
local id = append(A.started, 'flow.started')
for _, step in ipairs(A.entry) do
  redis.call('HSET', K.steps, step, STATUS.queued)
end
flush()
return {'started', id}
