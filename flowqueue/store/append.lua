-- Append events to one run's log, atomically, in one round trip.
-- KEYS: 1 run stream, 2 run meta hash, 3 flow run index, 4 lifecycle feed stream
-- ARGV: 1 run live channel, 2 feed live channel, 3 feed maxlen, 4 run id, 5 flow,
--       6 one code per event, 7.. the events' JSON bodies.
-- Codes: '-' log only; 'f' also to the lifecycle feed; 'R' 'C' 'F' 'X' also to the feed
-- and set the run's status (running, completed, failed, cancelled).
-- Live messages carry one "<id> <body>" line per event (JSON bodies hold no raw newline);
-- one PUBLISH per channel per call keeps a batch one message for every subscriber.
local STATUS = {R = 'running', C = 'completed', F = 'failed', X = 'cancelled'}
local codes = ARGV[6]
local ids, live, feed = {}, {}, {}
for j = 1, #codes do
  local body = ARGV[6 + j]
  local id = redis.call('XADD', KEYS[1], '*', 'e', body)
  local line = id .. ' ' .. body
  live[j] = line
  ids[j] = id
  local code = string.sub(codes, j, j)
  if code ~= '-' then
    local status = STATUS[code]
    if status then
      local ms = string.match(id, '^(%d+)')
      if code == 'R' then
        if redis.call('HSETNX', KEYS[2], 'started_ms', ms) == 1 then
          redis.call('ZADD', KEYS[3], 0, string.rep('0', 13 - #ms) .. ms .. ':' .. ARGV[4])
        end
        redis.call('HSET', KEYS[2], 'flow', ARGV[5], 'status', status)
      else
        redis.call('HSET', KEYS[2], 'flow', ARGV[5], 'status', status, 'ended_ms', ms)
      end
    end
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'e', body, 'id', id)
    feed[#feed + 1] = line
  end
end
if #live > 0 then
  redis.call('PUBLISH', ARGV[1], table.concat(live, '\n'))
end
if #feed > 0 then
  redis.call('PUBLISH', ARGV[2], table.concat(feed, '\n'))
end
return ids
