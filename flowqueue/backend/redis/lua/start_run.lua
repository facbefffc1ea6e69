-- start_run: KEYS 5 steps hash. ARGV 6 flow.started body, 7.. entry step names.
-- Returns {'exists'} when the run id is taken, else {'started', event id}.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists'}
end
local id = append(ARGV[6], 'R')
for i = 7, #ARGV do
  redis.call('HSET', KEYS[5], ARGV[i], 'queued')
end
flush()
return {'started', id}
