-- idempotency_done: K.idempotency. Its runs have started: later calls with the key need not
-- help start them. An expired record stays gone (HSET would make one that never expires).
if redis.call('EXISTS', K.idempotency) == 1 then
  redis.call('HSET', K.idempotency, 'done', '1')
end
return 1
