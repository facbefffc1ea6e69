-- Append events to one run's log, atomically, in one round trip.
-- KEYS: 1 run stream, 2 run meta hash, 3 flow run index, 4 lifecycle feed stream
-- ARGV: 1 run live channel, 2 feed live channel, 3 feed maxlen, 4 run id, 5 flow,
--       then pairs (body json, flags) per event.
-- flags: a status to record ("" for none), ":", then "f" if the event joins the feed.
local ids = {}
for i = 6, #ARGV, 2 do
  local body, flags = ARGV[i], ARGV[i + 1]
  local id = redis.call('XADD', KEYS[1], '*', 'e', body)
  redis.call('PUBLISH', ARGV[1], id .. ' ' .. body)
  local sep = string.find(flags, ':', 1, true)
  local status = string.sub(flags, 1, sep - 1)
  if status ~= '' then
    local ms = string.match(id, '^(%d+)')
    if status == 'running' then
      if redis.call('HSETNX', KEYS[2], 'started_ms', ms) == 1 then
        redis.call('ZADD', KEYS[3], 0, string.rep('0', 13 - #ms) .. ms .. ':' .. ARGV[4])
      end
      redis.call('HSET', KEYS[2], 'flow', ARGV[5], 'status', status)
    else
      redis.call('HSET', KEYS[2], 'flow', ARGV[5], 'status', status, 'ended_ms', ms)
    end
  end
  if string.sub(flags, sep + 1, sep + 1) == 'f' then
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'e', body, 'id', id)
    redis.call('PUBLISH', ARGV[2], id .. ' ' .. body)
  end
  ids[#ids + 1] = id
end
return ids
