-- once (a memoised block finished): K.awaits the run's awaits. A.key, A.record (JSON),
-- A.event the step.once body. The first record wins; returns the record that holds.
if redis.call('HSETNX', K.awaits, A.key, A.record) == 0 then
  return redis.call('HGET', K.awaits, A.key)
end
append(A.event, 'step.once')
flush()
return A.record
