-- archived (the archiver, once the archive holds the run's log up to A.last_id): the run
-- leaves K.archiving and its retention starts, counted from its end. A run appended to
-- since (A.last_id is not its newest event) stays for the next copy; one not ended any
-- more (started again) leaves, and its next end brings it back.
-- Returns 1 when its retention started, else 0.
if run_gone() then
  redis.call('ZREM', K.archiving, A.run_id)
  return 0
end
local m = meta()
if not RETENTION[m.status] or not m.ended_ms then
  redis.call('ZREM', K.archiving, A.run_id)
  return 0
end
local newest = redis.call('XREVRANGE', K.stream, '+', '-', 'COUNT', 1)[1]
if newest and newest[1] ~= A.last_id then
  return 0
end
redis.call('ZREM', K.archiving, A.run_id)
keep(m.status, tonumber(m.ended_ms))
return 1
