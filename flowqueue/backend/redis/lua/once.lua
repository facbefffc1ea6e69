-- once (a memoised block finished): K.awaits the run's awaits. A.key, A.record (JSON),
-- A.event the step.once body. The first record wins; returns the record that holds (a run
-- that is gone, expired, records nothing).
if run_gone() then
  return A.record
end
if redis.call('HSETNX', K.awaits, A.key, A.record) == 0 then
  return redis.call('HGET', K.awaits, A.key)
end
append(A.event, 'step.once')
expire_with_run()
flush()
return A.record
