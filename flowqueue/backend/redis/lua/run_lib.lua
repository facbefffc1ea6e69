-- Shared head of every per-run script: appends events exactly as append.lua always has.
-- KEYS: 1 run stream, 2 run meta hash, 3 flow run index, 4 lifecycle feed stream, and
-- last (KEYS[#KEYS], after any keys of the script) the flow's counters hash
-- ARGV: 1 run live channel, 2 feed live channel, 3 feed maxlen, 4 run id, 5 flow
-- Append codes: '-' log only; 'f' also to the lifecycle feed; 'R' 'C' 'F' 'X' also to the
-- feed and set the run's status (running, completed, failed, cancelled); 'a' / 'r' also
-- to the feed and count a step awaiting / no longer awaiting; 'd' also to the feed and
-- count a finished attempt's data.duration_ms in the flow's step-duration histogram.
-- The flow's counters: events appended, runs by current status, steps awaiting in runs
-- not yet ended (a run's end takes its awaiting steps off the count), and the
-- step-duration histogram (step_ms_le_<bound>, step_ms_sum).
-- Live messages carry one "<id> <body>" line per event (JSON bodies hold no raw newline),
-- feed messages "<feed id> <id> <body>";
-- flush() publishes once per channel per call, so a batch is one message per subscriber.
local STATUS = {R = 'running', C = 'completed', F = 'failed', X = 'cancelled'}
local STATS = KEYS[#KEYS]
local live, feed = {}, {}

local function count_status(status)
  local prev = redis.call('HGET', KEYS[2], 'status')
  if prev ~= status then
    if prev then
      redis.call('HINCRBY', STATS, prev, -1)
    end
    redis.call('HINCRBY', STATS, status, 1)
  end
  if status ~= 'running' then -- the run's awaits end with it
    local waiting = tonumber(redis.call('HGET', KEYS[2], 'awaiting') or '0')
    if waiting ~= 0 then
      redis.call('HINCRBY', STATS, 'awaiting', -waiting)
      redis.call('HSET', KEYS[2], 'awaiting', 0)
    end
  end
end

-- Upper bounds (ms) of the step-duration histogram; flowqueue/backend/store.py has the same.
local DURATION_BUCKETS = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}

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
  redis.call('HINCRBY', STATS, 'step_ms_le_' .. bucket, 1)
  redis.call('HINCRBY', STATS, 'step_ms_sum', math.floor(ms))
end

local function count_awaiting(delta)
  if redis.call('HEXISTS', KEYS[2], 'ended_ms') == 0 then
    redis.call('HINCRBY', KEYS[2], 'awaiting', delta)
    redis.call('HINCRBY', STATS, 'awaiting', delta)
  end
end

local function append(body, code)
  local id = redis.call('XADD', KEYS[1], '*', 'e', body)
  local line = id .. ' ' .. body
  live[#live + 1] = line
  if code ~= '-' then
    local status = STATUS[code]
    if status then
      count_status(status)
      local ms = string.match(id, '^(%d+)')
      if code == 'R' then
        if redis.call('HSETNX', KEYS[2], 'started_ms', ms) == 1 then
          redis.call('ZADD', KEYS[3], 0, string.rep('0', 13 - #ms) .. ms .. ':' .. ARGV[4])
        end
        redis.call('HSET', KEYS[2], 'flow', ARGV[5], 'status', status)
      else
        redis.call('HSET', KEYS[2], 'flow', ARGV[5], 'status', status, 'ended_ms', ms)
      end
    elseif code == 'a' then
      count_awaiting(1)
    elseif code == 'r' then
      count_awaiting(-1)
    elseif code == 'd' then
      count_duration(body)
    end
    local fid = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'e', body, 'id', id)
    feed[#feed + 1] = fid .. ' ' .. line
  end
  return id
end

local function flush()
  if #live > 0 then
    redis.call('HINCRBY', STATS, 'events', #live)
    redis.call('PUBLISH', ARGV[1], table.concat(live, '\n'))
  end
  if #feed > 0 then
    redis.call('PUBLISH', ARGV[2], table.concat(feed, '\n'))
  end
end

-- Server time in ms (scripts are replicated by effects, so TIME is allowed before writes).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Python writes "$name" as a JSON string where the script supplies a value (a number or
-- raw JSON; a function replacement, so '%' in the value is not a pattern escape).
local function fill(body, name, value)
  local text = tostring(value)
  return (string.gsub(body, '"%$' .. name .. '"', function() return text end))
end

local function run_ended()
  return redis.call('HEXISTS', KEYS[2], 'ended_ms') == 1
end
