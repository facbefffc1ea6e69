-- Shared head of every per-run script: K.stream (the run's log), K.meta, K.runs (the flow's
-- run index), K.feed, K.stats (the flow's counters); A.run_live, A.feed_live (channels),
-- A.feed_maxlen, A.run_id, A.flow. append(body, kind) writes an event to the run's log and
-- does what CODE[kind] says (APPEND_CODES in flowqueue/model/statuses.py).
-- The flow's counters are those of Keys.flow_stats (a run's end takes its awaiting steps
-- off the count). Live messages carry one "<id> <body>" line per event (JSON bodies hold no
-- raw newline), feed messages "<feed id> <id> <body>"; flush() publishes once per channel
-- per call, so a batch is one message per subscriber.
local live, feed = {}, {}

local function set_status(kind, id)
  local status, ms = RUN_STATUS[kind], string.match(id, '^(%d+)')
  local prev = redis.call('HGET', K.meta, 'status')
  if prev ~= status then
    if prev then
      redis.call('HINCRBY', K.stats, prev, -1)
    end
    redis.call('HINCRBY', K.stats, status, 1)
  end
  if kind == 'flow.started' then
    if redis.call('HSETNX', K.meta, 'started_ms', ms) == 1 then
      redis.call('ZADD', K.runs, 0, string.rep('0', 13 - #ms) .. ms .. ':' .. A.run_id)
    end
    redis.call('HSET', K.meta, 'flow', A.flow, 'status', status)
    return
  end
  local awaiting = tonumber(redis.call('HGET', K.meta, 'awaiting') or '0')
  if awaiting ~= 0 then -- the run's awaits end with it
    redis.call('HINCRBY', K.stats, 'awaiting', -awaiting)
    redis.call('HSET', K.meta, 'awaiting', 0)
  end
  redis.call('HSET', K.meta, 'flow', A.flow, 'status', status, 'ended_ms', ms)
end

local function count_duration(body)
  local ok, event = pcall(cjson.decode, body)
  local ms = ok and type(event.data) == 'table' and tonumber(event.data.duration_ms)
  if not ms then
    return
  end
  local bucket = 'inf'
  for _, bound in ipairs(DURATION_BUCKETS) do
    if ms <= bound then
      bucket = tostring(bound)
      break
    end
  end
  redis.call('HINCRBY', K.stats, 'step_ms_le_' .. bucket, 1)
  redis.call('HINCRBY', K.stats, 'step_ms_sum', math.floor(ms))
end

local function count_awaiting(delta)
  if redis.call('HEXISTS', K.meta, 'ended_ms') == 0 then
    redis.call('HINCRBY', K.meta, 'awaiting', delta)
    redis.call('HINCRBY', K.stats, 'awaiting', delta)
  end
end

local function append(body, kind)
  local code = CODE[kind] or error('no append code for event kind ' .. tostring(kind))
  local id = redis.call('XADD', K.stream, '*', 'e', body)
  local line = id .. ' ' .. body
  live[#live + 1] = line
  if code ~= 'log' then
    if code == 'status' then
      set_status(kind, id)
    elseif code == 'await' then
      count_awaiting(1)
    elseif code == 'resume' then
      count_awaiting(-1)
    elseif code == 'duration' then
      count_duration(body)
    end
    local fid = redis.call('XADD', K.feed, 'MAXLEN', '~', A.feed_maxlen, '*', 'e', body, 'id', id)
    feed[#feed + 1] = fid .. ' ' .. line
  end
  return id
end

local function flush()
  if #live > 0 then
    redis.call('HINCRBY', K.stats, 'events', #live)
    redis.call('PUBLISH', A.run_live, table.concat(live, '\n'))
  end
  if #feed > 0 then
    redis.call('PUBLISH', A.feed_live, table.concat(feed, '\n'))
  end
end

-- Python writes a SLOT's "$name" as a JSON string where the script supplies a value (a
-- number or raw JSON; a function replacement, so '%' in the value is not a pattern escape).
local function fill(body, slot, value)
  local text = tostring(value)
  return (string.gsub(body, slot, function() return text end))
end

local function run_ended()
  return redis.call('HEXISTS', K.meta, 'ended_ms') == 1
end
