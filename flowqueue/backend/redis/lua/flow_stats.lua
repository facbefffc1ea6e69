-- flow_stats: the flow's counters (K.stats), once its expired runs are dropped (up to
-- A.batch; expiry_lib.lua). Returns HGETALL of the counters.
drop_due(false, 0)
return redis.call('HGETALL', K.stats)
