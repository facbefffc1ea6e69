-- renew_lease: K.steps the run's step table. A.step, A.lease_ms. Only a running step's lease.
if redis.call('HGET', K.steps, A.step) ~= STATUS.running then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', K.steps, A.step .. '|lease', now + tonumber(A.lease_ms))
return 1
