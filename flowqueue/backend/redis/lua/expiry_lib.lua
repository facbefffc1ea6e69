-- Dropping a flow's expired runs: K.runs (its index), K.expiry (its expiry set), K.stats
-- (its counters), K.feed, K.expiring (flows with an expiry set); A.flow, A.batch (how many
-- at most, per call), A.shortest_retention_ms (0: runs are kept forever).
-- Redis deletes an ended run's own keys when they expire; its entry in the expiry set
-- (run_lib.lua: '<status>|<index member>|') says what else goes: its index member and one
-- from its status's counter. Its feed entries are older than the shortest retention by
-- then, and each drop trims the feed to that, so none is left.

-- Runs whose keys have expired by now, oldest first: {run, status, expired ms} each, from
-- `offset` on. Unless `dry`, each is dropped (once: a concurrent sweep that lost the ZREM
-- skips it) and a flow with no entry left leaves K.expiring.
local function drop_due(dry, offset)
  local due = redis.call('ZRANGEBYSCORE', K.expiry, '-inf', now_ms(), 'WITHSCORES', 'LIMIT',
    offset, tonumber(A.batch))
  local out = {}
  for i = 1, #due, 2 do
    local entry = due[i]
    local status, index = string.match(entry, '^([^|]*)|([^|]*)|')
    if dry or redis.call('ZREM', K.expiry, entry) == 1 then
      out[#out + 1] = {string.sub(index, 15), status, due[i + 1]}
      if not dry then
        redis.call('ZREM', K.runs, index)
        redis.call('HINCRBY', K.stats, status, -1)
      end
    end
  end
  if not dry and A.shortest_retention_ms ~= '0' then
    local oldest = now_ms() - tonumber(A.shortest_retention_ms)
    redis.call('XTRIM', K.feed, 'MINID', string.format('%.0f', oldest))
  end
  if not dry and redis.call('ZCARD', K.expiry) == 0 then
    redis.call('SREM', K.expiring, A.flow)
  end
  return out
end
