-- renew_lease: KEYS 1 steps hash. ARGV 1 step, 2 lease ms. Only a running step's lease.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= 'running' then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1] .. '|lease', now + tonumber(ARGV[2]))
return 1
