-- renew_lease: K.steps the run's step table. A.step, A.lease_ms. Only a running step's lease.
if redis.call('HGET', K.steps, A.step) ~= STATUS.running then
  return 0
end
redis.call('HSET', K.steps, A.step .. '|lease', now_ms() + tonumber(A.lease_ms))
return 1
