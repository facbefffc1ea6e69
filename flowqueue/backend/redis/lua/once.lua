-- once (a memoised block finished): KEYS 9 awaits hash. ARGV 6 key, 7 record JSON,
-- 8 step.once body. The first record wins; returns the record that holds.
if redis.call('HSETNX', KEYS[9], ARGV[6], ARGV[7]) == 0 then
  return redis.call('HGET', KEYS[9], ARGV[6])
end
append(ARGV[8], '-')
flush()
return ARGV[7]
